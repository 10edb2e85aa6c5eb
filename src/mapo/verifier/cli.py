"""`mapo verifier ...` commands (issue: the semantic verifier)."""

import typer

verifier_app = typer.Typer(no_args_is_help=True)


@verifier_app.command("train")
def train_command() -> None:
    """Train the embedded LiT-style verifier on crops of the world."""
    raise typer.BadParameter("not implemented yet (verifier issue)")
