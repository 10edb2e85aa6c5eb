"""`mapo model ...` commands (issue: the tiny model zoo)."""

import typer

model_app = typer.Typer(no_args_is_help=True)


@model_app.command("init")
def init_command() -> None:
    """Build a tiny Qwen-VL checkpoint and tokenizer as a local Hugging Face directory."""
    raise typer.BadParameter("not implemented yet (world issue)")
