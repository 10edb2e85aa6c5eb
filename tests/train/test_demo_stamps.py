"""The stamps that decide whether a `mapo demo` / `mapo compare` step is rebuilt, pinned for the shipped
configs: a refactor of the demo's config must not change them, or every existing runs/demo is rebuilt.

The golden file was written by this test's recorder at the commit before DemoConfig was typed
(``MAPO_WRITE_STAMPS=1`` rewrites it; only do that when a step's inputs change on purpose).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mapo.train import compare, demo
from mapo.train.config import load_config
from mapo.train.stamps import fingerprint, significant

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GOLDEN = Path(__file__).parent / "data" / "demo_stamps.json"


def _record_demo(cfg: demo.DemoConfig, monkeypatch, tmp_path) -> dict:
    """Every step's inputs of ``run_demo(cfg)`` (nothing is built: steps and the report are recorded)."""
    seen: dict = {}
    cfg = cfg.model_copy(update={"parallel": False})  # the recorder below cannot be sent to a second process
    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "_step", lambda name, out, inputs, build, asset=None: seen.__setitem__(name, inputs))

    def done(out, inputs):  # an evaluation: record its inputs, then reuse a (fake) finished summary
        if Path(out).parent.name == "eval":
            seen[f"eval {Path(out).name}"] = inputs
            return True
        return False  # a step's own check (the verifier's, before it goes to the second process)

    monkeypatch.setattr(demo, "is_done", done)
    for name in ("sft", "rl"):
        (tmp_path / cfg.out_dir / "eval" / name).mkdir(parents=True)
        (tmp_path / cfg.out_dir / "eval" / name / "summary.json").write_text("{}")
    monkeypatch.setattr(demo, "write_run_report", lambda *a, **k: {})
    demo.run_demo(cfg)
    return seen


def _record_compare(cfg: compare.CompareConfig) -> dict:
    root = Path(cfg.demo.out_dir)
    return {f"{est} seed {seed}": compare.run_config(cfg, root, est, seed).model_dump(mode="json")
            for est in cfg.estimators for seed in cfg.seeds}


def test_default_demo_and_compare_stamps_are_unchanged(monkeypatch, tmp_path):
    demo_cfg = load_config(demo.DemoConfig, CONFIGS / "demo.yaml")
    compare_cfg = load_config(compare.CompareConfig, CONFIGS / "compare.yaml")
    gap_cfg = load_config(compare.CompareConfig, CONFIGS / "compare_gap.yaml")
    got = {"demo": _record_demo(demo_cfg, monkeypatch, tmp_path), "compare": _record_compare(compare_cfg),
           "gap demo": _record_demo(gap_cfg.demo, monkeypatch, tmp_path / "gap"),
           "gap compare": _record_compare(gap_cfg)}
    got = significant(json.loads(json.dumps(got, default=str)))
    if os.environ.get("MAPO_WRITE_STAMPS"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got["demo"]) == sorted(want["demo"])
    for name in want["demo"]:
        assert got["demo"][name] == want["demo"][name], name
        assert fingerprint(got["demo"][name]) == fingerprint(want["demo"][name]), name
    for name in ("compare", "gap demo", "gap compare"):
        assert got[name] == want[name], name


@pytest.mark.parametrize("how", ["defaults", "yaml"])
def test_the_built_in_defaults_give_the_same_stamps(how, monkeypatch, tmp_path):
    """Outside a checkout `mapo demo` has no configs/demo.yaml: its built-in defaults must stamp alike."""
    cfg = demo.DemoConfig() if how == "defaults" else load_config(demo.DemoConfig, CONFIGS / "demo.yaml")
    got = significant(json.loads(json.dumps(_record_demo(cfg, monkeypatch, tmp_path), default=str)))
    assert got == json.loads(GOLDEN.read_text())["demo"]


def test_speed_only_keys_do_not_change_a_stamp():
    """The kept KV cache gives the same tokens (tests/agent/test_kv_cache.py): switching it reuses the runs."""
    base = {"rl": {"rollout": {"protocol": {"max_turns": 4, "kv_cache": True}}}}
    off = {"rl": {"rollout": {"protocol": {"max_turns": 4, "kv_cache": False}}}}
    before = {"rl": {"rollout": {"protocol": {"max_turns": 4}}}}
    assert fingerprint(base) == fingerprint(off) == fingerprint(before)
    slow = {"rl": {"rollout": {"protocol": {"max_turns": 4}}, "model": {"fast_generation": False}}}
    assert fingerprint(slow) == fingerprint({"rl": {"rollout": {"protocol": {"max_turns": 4}}, "model": {}}})
    assert fingerprint(base) != fingerprint({"rl": {"rollout": {"protocol": {"max_turns": 5, "kv_cache": True}}}})


def test_a_grounding_restart_changes_the_model_stamp_only_when_set(monkeypatch, tmp_path):
    """grounding_restart_steps enters the model's stamp only when set (0 keeps every existing model valid)."""
    base = _record_demo(demo.DemoConfig(), monkeypatch, tmp_path / "a")
    more = _record_demo(demo.DemoConfig(grounding_restart_steps=100), monkeypatch, tmp_path / "b")
    assert "grounding_restart_steps" not in base["model"] and more["model"]["grounding_restart_steps"] == 100
    assert fingerprint(significant(base["model"])) != fingerprint(significant(more["model"]))
    assert significant(base["world"]) == significant(more["world"])


def test_mixed_grounding_changes_the_model_stamp_only_when_set(monkeypatch, tmp_path):
    """0 leaves the key out (models built before it stay valid); the default, 200, is stamped."""
    base = _record_demo(demo.DemoConfig(grounding_mix_steps=0), monkeypatch, tmp_path / "a")
    more = _record_demo(demo.DemoConfig(), monkeypatch, tmp_path / "b")
    assert "grounding_mix_steps" not in base["model"] and more["model"]["grounding_mix_steps"] == 200
    assert fingerprint(significant(base["model"])) != fingerprint(significant(more["model"]))
