"""`mapo eval` and `mapo view` (issue: evaluation)."""

import typer


def eval_command() -> None:
    raise typer.BadParameter("not implemented yet (evaluation issue)")


def view_command() -> None:
    raise typer.BadParameter("not implemented yet (evaluation issue)")
