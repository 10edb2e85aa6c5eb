"""The ``mapo`` command line. Each layer owns its commands in ``mapo/<layer>/cli.py``; this file only
mounts them, so ``mapo --help`` stays fast (heavy imports happen inside the commands)."""

from __future__ import annotations

import typer

from mapo import __version__
from mapo.data.cli import world_app
from mapo.eval.cli import eval_command, view_command
from mapo.models.cli import model_app
from mapo.train.cli import compare_command, demo_command, sft_command, train_command
from mapo.user_errors import wrap_commands
from mapo.verifier.cli import verifier_app

app = typer.Typer(
    name="mapo",
    help="MAPO: RL for multimodal models that think with images, and check that they walk their talk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(world_app, name="world", help="The embedded visual-search world: make data, probe it.")
app.add_typer(model_app, name="model", help="The tiny model zoo: tokenizer and Qwen-VL checkpoints.")
app.add_typer(verifier_app, name="verifier", help="The semantic verifier: train, evaluate.")
app.command("sft", help="Cold-start supervised fine-tuning on expert trajectories.")(sft_command)
app.command("train", help="RL training (GRPO / RLOO / MAPO / MAPO-turn) from a YAML config.")(train_command)
app.command("demo", help="The whole pipeline on the embedded default; writes a report.")(demo_command)
app.command("compare", help="GRPO vs MAPO vs MAPO-turn from one SFT checkpoint, several seeds.")(compare_command)
app.command("eval", help="Evaluate a model on a benchmark with the agent loop.")(eval_command)
app.command("view", help="Render evaluation results as a static HTML trajectory viewer.")(view_command)


@app.command("advantages")
def advantages_command() -> None:
    """List the registered advantage estimators."""
    from mapo.core.advantages import list_advantages

    for name in list_advantages():
        typer.echo(name)


@app.command("version")
def version_command() -> None:
    """Print the installed mapo version."""
    typer.echo(__version__)


# Last, so that every command above (and those of the sub-apps) prints one line for a user's mistake.
wrap_commands(app)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
