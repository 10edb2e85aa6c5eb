"""`mapo world ...` commands (issue: the embedded default world)."""

import typer

world_app = typer.Typer(no_args_is_help=True)


@world_app.command("make")
def make_command() -> None:
    """Generate the embedded visual-search world as DeepEyes-schema parquet splits."""
    raise typer.BadParameter("not implemented yet (world issue)")
