"""The demo's packaged tiny model, verifier and SFT model (mapo.train.packaged): they match the default recipe (or
this test says how to rebuild them), they are installed only where a step's inputs are theirs, atomically and
marked as packaged, and what is packaged is a trained model, verifier and SFT model that load and work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mapo.train import demo, packaged
from mapo.train.config import load_config
from mapo.train.stamps import STAMP, built_seconds, fingerprint, is_done, mark_done

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REBUILD = ("python scripts/package_demo_models.py (it builds the stale steps: ~3 minutes on 2 cores for SFT alone, ~20 "
           "for all three), then commit src/mapo/assets")


def _default_inputs(cfg: demo.DemoConfig) -> dict[str, dict]:
    world = fingerprint(demo.step_inputs_world(cfg))
    model = demo.step_inputs_model(cfg, world)
    return {"model": model, "verifier": demo.step_inputs_verifier(cfg),
            "sft": demo.step_inputs_sft(cfg, fingerprint(model))}


@pytest.mark.parametrize("how", ["yaml", "defaults"])
def test_the_packaged_assets_are_the_default_recipes(how):
    """A change to the recipe of the model, the verifier or SFT makes the demo build them again (correct, but up to
    ~13 minutes slower): this fails first, so the assets are rebuilt with the change."""
    cfg = load_config(demo.DemoConfig, CONFIGS / "demo.yaml") if how == "yaml" else demo.DemoConfig()
    assert cfg.packaged and cfg.seed == 0
    for step, inputs in _default_inputs(cfg).items():
        path = packaged.asset(step, 0)
        assert path is not None, f"no packaged {step} for seed 0 in {packaged.assets_root()}: {REBUILD}"
        assert packaged.matches(path, inputs), f"the packaged {step} is stale for the default recipe: {REBUILD}"
        assert packaged.asset_stamp(path).get("seconds", 0) > 0  # the build time the demo's report quotes
        assert "CPUs" in packaged.asset_stamp(path).get("built_on", "")  # ...and the machine it was on
    assert packaged.asset("model", 1) is None  # other seeds build their own


def _strings(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif isinstance(x, str):
        yield x


def test_the_packaged_assets_name_no_path_of_the_machine_that_built_them():
    """What ships is read on other machines: its configs and records hold paths relative to the run (runs/demo/...),
    never the builder's own folders."""
    import os

    import yaml

    seen = 0
    for path in packaged.assets_root().rglob("*"):
        if path.suffix in (".yaml", ".json") and path.name not in ("tokenizer.json", "tokenizer_config.json"):
            data = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
            absolute = [v for v in _strings(data) if os.path.isabs(v)]
            assert not absolute, f"{path}: absolute paths {absolute}: package from a run in a relative out_dir"
            seen += 1
    assert seen >= 6


def _built_step(tmp_path: Path, inputs: dict) -> Path:
    built = tmp_path / "run" / "model"
    built.mkdir(parents=True)
    (built / "weights.bin").write_bytes(b"\x00\x01")
    (built / "sub").mkdir()
    (built / "sub" / "a.json").write_text("{}")
    mark_done(built, inputs, 12.5)
    return built


def test_package_then_install_round_trips_and_marks_the_step_packaged(tmp_path):
    inputs = {"seed": 0, "steps": 3}
    asset = tmp_path / "assets" / "seed0" / "model"
    stamp = packaged.package(_built_step(tmp_path, inputs), asset)
    assert stamp["fingerprint"] == fingerprint(inputs) and not (asset / STAMP).exists()
    assert "CPUs" in stamp["built_on"] and "torch" in stamp["built_on"]  # what the build's seconds were on
    assert packaged.asset("model", 0, root=tmp_path / "assets") == asset
    out = tmp_path / "demo" / "model"
    out.mkdir(parents=True)
    (out / "half-built.txt").write_text("an interrupted build")  # replaced, not merged into
    packaged.install(asset, out, inputs)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == \
        [STAMP, "sub", "sub/a.json", "weights.bin"]
    assert is_done(out, inputs) and packaged.was_packaged(out) and built_seconds(out) == 12.5
    assert not list(out.parent.glob(".*packaged*"))  # the copy's staging folder is gone
    with pytest.raises(ValueError, match="installed from a packaged asset"):
        packaged.package(out, tmp_path / "again")  # an asset is a build's record, not a copy of a copy
    with pytest.raises(FileNotFoundError, match="only a finished demo step"):
        packaged.package(tmp_path / "nothing", tmp_path / "again")


def test_a_step_installs_the_asset_only_for_its_own_inputs(tmp_path, caplog):
    inputs = {"seed": 0, "steps": 3}
    asset = tmp_path / "asset"
    packaged.package(_built_step(tmp_path, inputs), asset)
    builds: list[Path] = []

    def build(out: Path):
        def run():
            builds.append(out)
            out.mkdir(parents=True, exist_ok=True)
        return run

    out = tmp_path / "demo" / "model"
    with caplog.at_level("INFO", logger="mapo.demo"):
        seconds = demo._step("model", out, inputs, build(out), asset)
    assert builds == [] and seconds is not None and packaged.was_packaged(out)
    assert "installed the packaged tiny model" in caplog.text and "packaged=false" in caplog.text
    assert "in 12.5 s on " in caplog.text and "CPUs" in caplog.text
    assert demo._step("model", out, inputs, build(out), asset) is None  # reused, like any finished step
    other = tmp_path / "demo" / "other"
    demo._step("model", other, {"seed": 0, "steps": 4}, build(other), asset)  # another recipe: built
    assert builds == [other] and not packaged.was_packaged(other)
    demo._step("model", tmp_path / "demo" / "none", inputs, build(tmp_path / "none"), None)  # packaged=false
    assert len(builds) == 2


def test_the_report_says_which_steps_were_packaged():
    from mapo.report.run_report import stage_rows

    rows = stage_rows({"world": 20.0, "model": 0.1, "verifier": None}, 5.0, {"model": 595.4, "verifier": 217.5})
    assert rows == [["world", "20"], ["model", "0 (packaged, built in 595 s)"],
                    ["verifier", "reused (packaged, built in 218 s)"], ["total (wall)", "300"]]


@pytest.mark.slow
def test_the_packaged_model_zooms_and_the_packaged_verifier_scores(tmp_path):
    """What ships loads and is trained: on fresh tasks of the demo's world the model zooms with valid calls, and
    the verifier scores each crop against the call's label."""
    from mapo.data.world.export import write_world
    from mapo.eval.evaluate import evaluate_policy
    from mapo.eval.runner import EvalConfig
    from mapo.verifier import VerifierConfig

    cfg = demo.DemoConfig()
    world = tmp_path / "world"
    write_world(cfg.world.model_copy(update={"seed": 7, "n_train": 1, "n_val": 1, "n_test": 4}), world)
    summary = evaluate_policy(packaged.asset("model", 0), "world", world / "test.parquet", tmp_path / "eval",
                              protocol=demo._eval_protocol(cfg), cfg=EvalConfig(limit=4),
                              verifier_cfg=VerifierConfig(backend="embedded", path=packaged.asset("verifier", 0)),
                              seed=0, fresh=True)
    text = json.dumps(summary, default=str)
    assert summary["n_items"] == 4 and summary["n_errors"] == 0, text
    # a base model before SFT: it zooms (every call valid) but has not learnt to stop and answer yet
    assert summary["tools"]["tool_call_rate"] == 1.0 and summary["tools"]["valid_call_rate"] == 1.0, text
    assert summary["alignment"]["n_scored"] > 0 and -1 <= summary["alignment"]["mean"] <= 1, text


def test_the_sft_stamp_leaves_out_the_run_folder_and_keeps_the_recipe():
    """SFT's paths are the run's own folders: a packaged SFT model installs in any out_dir; its recipe still counts."""
    cfg = demo.DemoConfig()
    here = demo.step_inputs_sft(cfg, "m")
    assert here == demo.step_inputs_sft(cfg.model_copy(update={"out_dir": "elsewhere/run"}), "m")
    assert "runs/demo" not in json.dumps(here)
    assert fingerprint(here) != fingerprint(demo.step_inputs_sft(cfg, "another model"))
    more = cfg.model_copy(update={"sft": cfg.sft.model_copy(update={"epochs": cfg.sft.epochs + 1})})
    assert fingerprint(here) != fingerprint(demo.step_inputs_sft(more, "m"))


def test_a_packaged_step_leaves_out_its_intermediate_checkpoints(tmp_path):
    built = _built_step(tmp_path, {"seed": 0})
    (built / "checkpoints" / "step_00000200").mkdir(parents=True)
    (built / "checkpoints" / "step_00000200" / "optimizer.pt").write_bytes(b"\x00")
    (built / "final").mkdir()
    (built / "final" / "model.safetensors").write_bytes(b"\x00")
    asset = tmp_path / "asset"
    packaged.package(built, asset)
    assert not (asset / "checkpoints").exists() and (asset / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_the_packaged_sft_model_zooms_and_answers(tmp_path):
    """The packaged SFT model is the cold start RL begins from: on fresh tasks it zooms with valid calls and
    answers within the turn budget (the base model above zooms but does not answer)."""
    from mapo.data.world.export import write_world
    from mapo.eval.evaluate import evaluate_policy
    from mapo.eval.runner import EvalConfig

    cfg = demo.DemoConfig()
    world = tmp_path / "world"
    write_world(cfg.world.model_copy(update={"seed": 7, "n_train": 1, "n_val": 1, "n_test": 4}), world)
    summary = evaluate_policy(packaged.asset("sft", 0) / "final", "world", world / "test.parquet", tmp_path / "eval",
                              protocol=demo._eval_protocol(cfg), cfg=EvalConfig(limit=4), seed=0, fresh=True)
    text = json.dumps(summary, default=str)
    assert summary["n_items"] == 4 and summary["n_errors"] == 0, text
    assert summary["tools"]["valid_call_rate"] == 1.0 and summary["tools"]["answered_rate"] == 1.0, text
