"""`mapo world make` and `mapo model init` end to end on a tiny world."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mapo.cli import app
from mapo.data.parquet import load_tasks

SMALL = [
    "--set",
    "canvas_width=448",
    "--set",
    "canvas_height=448",
    "--set",
    "clutter=6",
    "--set",
    "n_train=6",
    "--set",
    "n_val=3",
    "--set",
    "n_test=2",
]


def test_world_make_writes_deterministic_splits_and_model_init_builds_a_checkpoint(tmp_path):
    runner = CliRunner()
    for name in ("a", "b"):
        result = runner.invoke(app, ["world", "make", "--out", str(tmp_path / name), *SMALL])
        assert result.exit_code == 0, result.output
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        a, b = tmp_path / "a" / f"{split}.parquet", tmp_path / "b" / f"{split}.parquet"
        assert a.read_bytes() == b.read_bytes()
        tasks = load_tasks(a)
        assert len(tasks) == n and tasks[0].image.size == (448, 448)
    assert "clutter: 6" in (tmp_path / "a" / "world.yaml").read_text()

    result = runner.invoke(
        app,
        [
            "model",
            "init",
            "--out",
            str(tmp_path / "model"),
            "--world",
            str(tmp_path / "a"),
            "--vocab-size",
            "400",
            "--warmup-steps",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    from transformers import AutoConfig, PreTrainedTokenizerFast

    config = AutoConfig.from_pretrained(tmp_path / "model", local_files_only=True)
    assert config.model_type == "qwen2_5_vl"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tmp_path / "model", local_files_only=True)
    call = '<tool_call>{"name": "image_zoom_in_tool"'
    assert tokenizer.decode(tokenizer(call)["input_ids"]) == call
    assert "<|image_pad|>" in tokenizer.get_vocab()
    meta = json.loads((tmp_path / "model" / "mapo_model.json").read_text())
    assert meta["family"] == "qwen2_5_vl" and meta["warmup"]["steps"] == 3
    assert "LM warm-up: 3 steps" in result.output
    # pixels are normalised with the world's own statistics (pale canvases: means near 0.9, small stds)
    pre = json.loads((tmp_path / "model" / "preprocessor_config.json").read_text())
    assert pre["image_mean"] == meta["image_mean"] and min(pre["image_mean"]) > 0.7
    assert max(pre["image_std"]) < 0.3 and "image normalisation from the world's views" in result.output


def test_bad_inputs_get_clear_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["world", "make", "--out", str(tmp_path), "--set", "clutterr=3"])
    assert result.exit_code != 0 and "clutterr" in result.output
    result = runner.invoke(
        app, ["model", "init", "--out", str(tmp_path / "m"), "--world", str(tmp_path / "none")]
    )
    assert result.exit_code != 0 and "mapo world make" in result.output


def _pattern_world(runner, tmp_path):
    """A small world of pattern questions (what the image warm-ups train on)."""
    world = tmp_path / "w"
    pattern = ["--set", "families=[attribute]", "--set", "attribute_asks=[pattern]", "--set", "target_size_min=60",
               "--set", "target_size_max=70"]
    assert runner.invoke(app, ["world", "make", "--out", str(world), *SMALL, *pattern]).exit_code == 0
    return world


def test_model_init_runs_the_image_warm_ups_and_refuses_grounding_without_grid_boxes(tmp_path):
    runner = CliRunner()
    world = _pattern_world(runner, tmp_path)
    result = runner.invoke(app, ["model", "init", "--out", str(tmp_path / "bad"), "--world", str(world),
                                 "--warmup-steps", "0", "--grounding-steps", "2"])
    assert result.exit_code != 0 and "--box-side" in result.output
    result = runner.invoke(app, ["model", "init", "--out", str(tmp_path / "m"), "--world", str(world),
                                 "--family", "qwen3_vl", "--warmup-steps", "1", "--vision-warmup-steps", "2",
                                 "--grounding-steps", "2", "--box-side", "256", "--answer-with", "text",
                                 "--freeze-vision-tower"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "m" / "mapo_model.json").read_text())
    assert meta["warmup"]["steps"] == 1 and meta["vision_warmup"]["steps"] == 2 and meta["grounding"]["steps"] == 2
    assert set(meta["vision_warmup"]["held_out_accuracy"]) == {"pattern"}  # measured on the val split's zooms
    assert meta["grounding"]["frozen_vision_tower"] is True and "held-out accuracy" in result.output
    assert 0 <= meta["grounding"]["held_out_hit_rate"] <= 1 and "held-out hit rate" in result.output
    assert "vision warm-up: 2 steps" in result.output and "grounding warm-up: 2 steps" in result.output
    assert meta["grounding"]["examples"] == 2 * 6  # one where-question and one reading per train task


def test_model_init_grounds_in_the_agent_prompt_when_asked_and_names_a_bad_choice(tmp_path):
    runner = CliRunner()
    world = _pattern_world(runner, tmp_path)
    common = ["--world", str(world), "--family", "qwen3_vl", "--warmup-steps", "0", "--grounding-steps", "1",
              "--box-side", "256"]
    result = runner.invoke(app, ["model", "init", "--out", str(tmp_path / "bad"), *common,
                                 "--grounding-prompt", "there"])
    assert result.exit_code != 0 and "where or agent" in result.output
    result = runner.invoke(app, ["model", "init", "--out", str(tmp_path / "m"), *common, "--grounding-prompt", "agent",
                                 "--tools-prompt", "compact"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "m" / "mapo_model.json").read_text())
    assert meta["grounding"]["examples"] == 2 * 6  # one agent first turn and one reading per train task
    assert 0 <= meta["grounding"]["held_out_hit_rate"] <= 1
