"""`mapo demo` end to end at toy sizes, with the verifier and the SFT evaluation in the second process: every
step is built and stamped, the report has each step's time, a second run reuses everything, and the verifier the
second process trained is the one this process trains from the same config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mapo.train import demo, demo_seeds

TOY = {
    "seed": 0, "threads": 1, "threads_alone": 1, "parallel": True,
    "world": {"n_train": 8, "n_val": 4, "n_test": 4, "clutter": 4},
    "verifier": {"steps": 2, "reader_warmup_steps": 2, "batch_size": 4, "warmup_steps": 0},
    "warmup_steps": 2, "vision_warmup_steps": 2, "grounding_steps": 2, "grounding_max_steps": 4,
    "sft": {"epochs": 1, "batch_size": 4, "micro_batch_size": 4},
    "rl": {"rollout": {"group_size": 2, "prompts_per_step": 2},
           "algorithm": {"ppo_epochs": 1, "mini_batch_groups": 1},
           "run": {"total_steps": 1, "save_every": 1, "eval_every": 1}, "data": {"eval_limit": 2}},
    "eval_limit": 2,
    "grounding_mix_steps": 2,  # the mixed phase (where + the agent's prompt) end to end
}


@pytest.fixture(scope="module")
def toy_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo"
    cfg = demo.DemoConfig.model_validate({**TOY, "out_dir": str(root)})
    return cfg, demo.run_demo(cfg)


def test_every_step_is_built_stamped_and_timed(toy_demo):
    cfg, summary = toy_demo
    root = Path(cfg.out_dir)
    for step in ("world", "verifier", "model", "sft", "rl", "eval/sft", "eval/rl"):
        assert (root / step / ".mapo-stamp.json").is_file(), step
    assert set(summary["stage_seconds"]) == {"world", "verifier", "model", "sft", "rl", "eval SFT",
                                             "eval SFT + RL"}
    assert all(s is not None and s >= 0 for s in summary["stage_seconds"].values())
    assert summary["parallel"] is True and summary["minutes"] > 0
    assert set(summary["evaluation"]) == {"SFT", "SFT + RL (MAPO)"}
    saved = json.loads((root / "report" / "summary.json").read_text())
    assert saved["stage_seconds"] == summary["stage_seconds"]
    side_log = (root / "logs" / "side.log").read_text()
    assert "[verifier] done" in side_log  # its log, not the terminal's
    assert "vision warm-up" in side_log  # the tower trained there, beside the LM warm-up here, and joined the model
    warm = json.loads((root / "model" / "mapo_model.json").read_text())
    assert {"warmup", "vision_warmup", "grounding"} <= set(warm) and not (root / ".model-vision").exists()
    # the toy's grounding never reaches the bar: checked after its 2 steps, then trained to the cap of 4
    assert warm["grounding"]["steps"] == 4 and [s for s, _ in warm["grounding"]["held_out_curve"]] == [2, 4]
    # ...by two racing runs (grounding_race), the second one in the second process; the tie at the cap is run 0's
    race = warm["grounding"]["race"]
    assert race["runs"] == 2 and race["winner"] == race["run"] == 0 and set(race["curves"]) == {"0", "1"}
    assert "racing run 1" in side_log and not list(root.glob(".model-race*"))
    # then the mixed phase, checked in the agent's prompt
    assert warm["grounding_mix"]["steps"] == 2 and warm["grounding_mix"]["examples"] > warm["grounding"]["examples"]
    assert demo_seeds.step_minutes(root) > 0  # every step's stamp says how long it took


def test_a_second_run_reuses_every_step(toy_demo):
    cfg, first = toy_demo
    again = demo.run_demo(cfg)
    built = {k for k, v in again["stage_seconds"].items() if v is not None and not k.startswith("eval")}
    assert built == set()
    assert again["evaluation"] == first["evaluation"]
    assert demo_seeds.step_minutes(Path(cfg.out_dir)) > 0  # the build times outlive a run that reused them


def test_the_second_process_trains_the_verifier_this_process_would(toy_demo, tmp_path):
    cfg, _ = toy_demo
    here = tmp_path / "verifier"
    demo.train_verifier(cfg.verifier.model_copy(update={"world_seed": cfg.seed}), here)
    side, mine = (load_file(d / "model.safetensors") for d in (Path(cfg.out_dir) / "verifier", here))
    assert side.keys() == mine.keys()
    assert all(side[k].equal(mine[k]) for k in side)


@pytest.mark.parametrize("hit, warned", [(0.05, True), (0.85, False)])
def test_a_grounding_warm_up_that_did_not_take_is_reported(hit, warned, monkeypatch, tmp_path, caplog):
    for name in ("train_split", "load_tasks", "train_tokenizer", "world_texts", "build_tiny_model", "lm_warm_up",
                 "grounding_examples"):
        monkeypatch.setattr(demo, name, lambda *a, **k: None)
    monkeypatch.setattr(demo, "world_image_statistics", lambda *a, **k: (None, None))
    monkeypatch.setattr(demo, "grounding_warm_up", lambda *a, **k: {"held_out_hit_rate": hit, "steps": 800})
    cfg = demo.DemoConfig(seed=1, vision_warmup_steps=0, grounding_mix_steps=0)
    demo.init_model(tmp_path / "world", tmp_path / "model", cfg)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert bool(said) == warned
    if warned:
        assert "did not take on seed 1" in said[0] and "after 800 steps" in said[0] and "0.05" in said[0]


def test_the_did_not_take_warning_judges_the_restarted_model(monkeypatch, tmp_path, caplog):
    """With a restart, SFT starts from the restart's weights: the warning reads its hit rate and counts its steps."""
    for name in ("train_split", "load_tasks", "train_tokenizer", "world_texts", "build_tiny_model", "lm_warm_up",
                 "grounding_examples"):
        monkeypatch.setattr(demo, name, lambda *a, **k: None)
    monkeypatch.setattr(demo, "world_image_statistics", lambda *a, **k: (None, None))
    records = iter([{"held_out_hit_rate": 0.85, "steps": 700}, {"held_out_hit_rate": 0.05, "steps": 100}])
    monkeypatch.setattr(demo, "grounding_warm_up", lambda *a, **k: next(records))
    cfg = demo.DemoConfig(seed=1, vision_warmup_steps=0, grounding_race=False, grounding_restart_steps=100,
                          grounding_mix_steps=0)
    demo.init_model(tmp_path / "world", tmp_path / "model", cfg)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1 and "after 800 steps" in said[0] and "0.05" in said[0]


@pytest.mark.parametrize("boxes, warned", [({"hit_rate": 0.18}, True), ({"hit_rate": 0.51}, False),
                                           ({"hit_rate": None}, False), (None, False)])
@pytest.mark.parametrize("mix", [0, 200])
def test_an_sft_model_whose_zooms_miss_is_reported(boxes, warned, mix, caplog):
    """The advice names the mixed grounding phase when it was off, and more of it when it already ran."""
    assert demo.warn_if_zooms_miss(1, {"accuracy": 0.3, "boxes": boxes}, mix) is warned
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert bool(said) == warned
    if warned:
        assert "seed 1" in said[0] and "0.18" in said[0]
        assert f"grounding_mix_steps={400 if mix else 200}" in said[0] and ("phase ran" in said[0]) == bool(mix)


@pytest.mark.parametrize("restart", [0, 100])
def test_grounding_restarts_with_a_fresh_optimizer_only_when_asked(restart, monkeypatch, tmp_path):
    for name in ("train_split", "load_tasks", "train_tokenizer", "world_texts", "build_tiny_model", "lm_warm_up"):
        monkeypatch.setattr(demo, name, lambda *a, **k: None)
    examples = object()  # the grounding examples, built once
    monkeypatch.setattr(demo, "grounding_examples", lambda *a, **k: examples)
    monkeypatch.setattr(demo, "world_image_statistics", lambda *a, **k: (None, None))
    calls: list[dict] = []
    monkeypatch.setattr(demo, "grounding_warm_up",
                        lambda *a, **k: calls.append(k) or {"held_out_hit_rate": 0.9, "steps": 700})
    cfg = demo.DemoConfig(seed=1, vision_warmup_steps=0, grounding_race=False, grounding_restart_steps=restart,
                          grounding_mix_steps=0)
    demo.init_model(tmp_path / "world", tmp_path / "model", cfg)
    assert len(calls) == 1 + bool(restart) and calls[0]["target_hit_rate"] == cfg.grounding_target
    if restart:  # the same examples, `restart` steps, no bar, its own record
        assert calls[1]["steps"] == restart and calls[1]["target_hit_rate"] is None
        assert calls[1]["record_as"] == "grounding_restart" and calls[1].get("order_seed") is None
        assert calls[1]["examples"] is calls[0]["examples"] is examples


@pytest.mark.parametrize("mix", [0, 200])
def test_mixed_grounding_runs_after_the_rest_only_when_asked(mix, monkeypatch, tmp_path):
    """grounding_mix_steps: after grounding, `mix` steps on the where-questions plus the same tasks asked in the
    agent's prompt, a fresh optimizer (a call of its own), the check in the agent's prompt, alone()."""
    for name in ("train_split", "load_tasks", "train_tokenizer", "world_texts", "build_tiny_model", "lm_warm_up"):
        monkeypatch.setattr(demo, name, lambda *a, **k: None)
    monkeypatch.setattr(demo, "world_image_statistics", lambda *a, **k: (None, None))
    built: list[dict] = []
    monkeypatch.setattr(demo, "grounding_examples",
                        lambda *a, **k: built.append(k) or (["agent"] if k["protocol"] is not None else ["where"]))
    calls: list[dict] = []
    monkeypatch.setattr(demo, "grounding_warm_up",
                        lambda *a, **k: calls.append(k) or {"held_out_hit_rate": 0.9, "steps": 700})
    phases: list[str] = []
    cfg = demo.DemoConfig(seed=1, vision_warmup_steps=0, grounding_race=False, grounding_mix_steps=mix)
    demo.init_model(tmp_path / "world", tmp_path / "model", cfg, alone=lambda: phases.append("alone"))
    assert len(calls) == 1 + bool(mix) and calls[0]["examples"] == ["where"] and calls[0]["protocol"] is None
    assert len(built) == 1 + bool(mix)
    if mix:
        assert calls[1]["examples"] == ["where", "agent"] and calls[1]["steps"] == mix
        assert calls[1]["protocol"] == cfg.protocol and calls[1]["target_hit_rate"] is None
        assert calls[1]["record_as"] == "grounding_mix" and calls[1]["order_seed"] == demo.race_order_seed(1, 3)
        assert phases == ["alone"]
    else:
        assert phases == []


def test_the_model_built_in_one_process_is_the_one_built_in_two(toy_demo, tmp_path):
    """parallel: false runs the vision warm-up here, before the LM warm-up; the weights are the same."""
    cfg, _ = toy_demo
    root = Path(cfg.out_dir)
    demo.init_model(root / "world", tmp_path / "model", cfg.model_copy(update={"parallel": False}))
    one, two = (load_file(d / "model.safetensors") for d in (tmp_path / "model", root / "model"))
    assert one.keys() == two.keys() and all(one[k].equal(two[k]) for k in one)


def test_an_interrupted_run_resumes_only_when_it_began_from_the_same_inputs(tmp_path):
    """A run folder's config names its model by path, and a rebuilt model sits at the same path: what was
    interrupted is resumed only when it began from the same upstream stamps; otherwise it starts clean."""
    from mapo.train.config import SFTConfig, dump_config

    out = tmp_path / "sft"
    cfg = SFTConfig.model_validate({"train": "w/train.parquet", "out_dir": str(out), "model": {"path": "m"}})
    assert not demo._resumable(out, cfg, SFTConfig, {"model": "old"})  # nothing there: a fresh start, recorded
    dump_config(cfg, out / "config.yaml")
    (out / "checkpoints").mkdir()
    assert demo._resumable(out, cfg, SFTConfig, {"model": "old"})  # the same inputs and config: resume
    assert (out / "checkpoints").is_dir()
    assert not demo._resumable(out, cfg, SFTConfig, {"model": "rebuilt"})  # same config, another model: clean
    assert not (out / "checkpoints").exists() and not (out / "config.yaml").exists()


def test_grounding_goes_alone_after_its_shared_steps_whatever_the_clock(tmp_path, monkeypatch):
    """The main process's thread count follows the grounding step number: beside the second process for
    ``shared_grounding_steps``, then alone (waiting for it), and alone again for SFT."""
    calls: list = []
    monkeypatch.setattr(demo.MainThreads, "alone", lambda self: calls.append("alone"))
    monkeypatch.setattr(demo.MainThreads, "shared", lambda self: calls.append("shared"))

    class Stop(Exception):
        pass

    def init_model(world_dir, out, cfg, side=None, then=None, on_step=None, alone=None):
        for n in (1, 2, 3, 4):
            calls.append(n)
            on_step(n)
        alone()  # the mixed phase (grounding_mix_steps) goes alone
        raise Stop

    monkeypatch.setattr(demo, "init_model", init_model)
    cfg = demo.DemoConfig.model_validate({**TOY, "parallel": False, "shared_grounding_steps": 2,
                                          "out_dir": str(tmp_path / "demo")})
    with pytest.raises(Stop):
        demo.prepare(cfg)
    assert calls == ["alone", "shared", 1, 2, 3, "alone", 4, "alone", "alone"]  # the world alone; step 3 on alone


def test_the_demo_model_grounds_in_the_agent_prompt_when_asked(tmp_path):
    """``grounding_prompt: agent`` builds the model with the agent's first-turn grounding examples (each train
    task mirrored four ways) beside the reading examples, and measures its held-out hit rate."""
    from mapo.data.world.export import write_world

    cfg = demo.DemoConfig.model_validate({**TOY, "parallel": False, "grounding_prompt": "agent",
                                          "grounding_target": None, "out_dir": str(tmp_path / "demo")})
    world = tmp_path / "demo" / "world"
    write_world(cfg.world.model_copy(update={"seed": 0}), world)
    demo.init_model(world, tmp_path / "demo" / "model", cfg)
    grounding = json.loads((tmp_path / "demo" / "model" / "mapo_model.json").read_text())["grounding"]
    n_train = cfg.world.n_train
    assert grounding["steps"] == 2 and grounding["examples"] == 4 * n_train + n_train  # mirrored first turns + reading
    assert 0 <= grounding["held_out_hit_rate"] <= 1
