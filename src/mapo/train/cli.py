"""`mapo sft`, `mapo train`, `mapo demo`, `mapo compare` (issue: the trainer)."""

import typer


def sft_command() -> None:
    raise typer.BadParameter("not implemented yet (trainer issue)")


def train_command() -> None:
    raise typer.BadParameter("not implemented yet (trainer issue)")


def demo_command() -> None:
    raise typer.BadParameter("not implemented yet (trainer issue)")


def compare_command() -> None:
    raise typer.BadParameter("not implemented yet (trainer issue)")
