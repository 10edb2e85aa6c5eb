from typer.testing import CliRunner

from mapo.cli import app


def test_show_config_lists_every_key_with_its_doc():
    result = CliRunner().invoke(app, ["train", "--show-config"])
    assert result.exit_code == 0, result.output
    assert "algorithm.beta" in result.output and "semantic weight" in result.output


def test_a_bad_override_is_a_usage_error_naming_the_key():
    result = CliRunner().invoke(app, ["train", "--set", "algorithm.betta=0.1"])
    assert result.exit_code != 0
    assert "betta" in result.output


def test_sft_and_compare_and_demo_have_their_configs():
    for cmd, key in (("sft", "epochs"), ("compare", "estimators"), ("demo", "eval_limit")):
        result = CliRunner().invoke(app, [cmd, "--show-config"])
        assert result.exit_code == 0 and key in result.output, (cmd, result.output)


def test_demo_seeds_that_cannot_be_read_say_how_to_write_them():
    result = CliRunner().invoke(app, ["demo", "--seeds", "4-1"])
    assert result.exit_code != 0
    assert "0-4, 0,2,7 or 3" in result.output
