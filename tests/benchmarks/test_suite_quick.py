"""The model-level benchmarks run end to end at tiny sizes against the real trainer, engine and verifier:
every figure is a finite positive number and shares of a step or a rollout add up."""

import json
import math

import pytest
import run


def _figures(out, name):
    rec = json.loads(out.read_text())["benchmarks"][name]
    assert rec["status"] == "ok", rec.get("traceback", rec["reason"])
    return rec["figures"]


@pytest.mark.slow
def test_step_breakdown_and_rollout_quick(tmp_path):
    out = tmp_path / "r.json"
    run.main(["--quick", "--only", "step_breakdown", "--only", "rollout", "--threads", "1", "--out", str(out)])
    step = {f["measure"]: f for f in _figures(out, "step_breakdown")}
    assert step["whole step"]["mapo"] > 0 and step["peak memory (RSS)"]["mapo"] > 50
    shares = [f["mapo"] for m, f in step.items() if m.endswith("share")]
    assert sum(shares) == pytest.approx(100, abs=1.0)  # "other" closes the sum
    assert step["verifier share"]["mapo"] > 0 and step["rollout share"]["mapo"] > 0  # zooms were scored
    roll = {f["measure"]: f for f in _figures(out, "rollout")}
    top = [f["mapo"] for m, f in roll.items() if m.startswith("share:") and "model forward:" not in m]
    assert sum(top) == pytest.approx(100, abs=1.0)
    assert roll["share: model forward"]["mapo"] > roll["share: model forward: prefill (prompt + images, each turn)"]["mapo"]


@pytest.mark.slow
def test_rl_step_against_trl_quick(tmp_path):
    pytest.importorskip("trl")
    out = tmp_path / "r.json"
    run.main(["--quick", "--only", "rl_step", "--threads", "1", "--out", str(out)])
    figs = _figures(out, "rl_step")
    grpo = [f for f in figs if f["measure"] == "single-turn GRPO step"]
    assert {f["unit"] for f in grpo} == {"samples/s", "gen. tokens/s"}
    assert all(f["mapo"] > 0 and f["reference"] > 0 and math.isfinite(f["speedup"]) for f in grpo)
    assert all(len(f["extra"]["trl_s"]) == len(f["extra"]["mapo_s"]) >= 1 for f in grpo[:1])
