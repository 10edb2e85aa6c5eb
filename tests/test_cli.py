from typer.testing import CliRunner

from mapo.cli import app


def test_help_lists_the_subcommands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ["world", "model", "verifier", "sft", "train", "demo", "compare", "eval", "view", "advantages"]:
        assert name in result.output
