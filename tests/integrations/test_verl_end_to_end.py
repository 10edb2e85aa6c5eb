"""A real verl 0.9.1 PPO step of grpo, mapo and mapo_turn on CPU (slow: ~2-5 min each, ~10 GB peak).

Each test launches ``python -m mapo.integrations.verl.main_ppo`` with ``configs/verl/cpu_smoke.yaml`` and the
CPU platform loaded through verl's hooks (``VERL_USE_EXTERNAL_MODULES=mapo.integrations.verl.cpu``,
``VERL_PLATFORM=cpu``): a tiny random Qwen2.5-VL from ``mapo.models.zoo``, a 2-prompt parquet (G = 2), mapo's
zoom tool with a stand-in verifier (a crop's red fraction: 1.0 on the red square, 0.0 on grey) and the ``hf``
rollout replaying a script, so the trajectories are known. What verl computed comes back through
``MAPO_VERL_DUMP_DIR`` (advantages from the trainer process, weights at every rollout sync) and verl's file
logger (metrics). The runs are sequential (one test at a time; pytest does not run them concurrently).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("cachetools", reason="verl's trainer needs the verl extra's cachetools/fastapi/uvicorn")
pytest.importorskip("uvicorn")
pytest.importorskip("psutil")

sys.path.insert(0, str(Path(__file__).resolve().parent / "verl_cpu_fixtures"))
import verl_cpu_run as cpu_run

from mapo.core.advantages import get_advantage
from mapo.integrations.verl.turns import turn_tensors

pytestmark = [pytest.mark.slow, pytest.mark.verl]

BETA = 0.4
INV_SQRT2 = 1 / math.sqrt(2)  # norm_G of two different values with the unbiased std: +-1/sqrt(2)


def _only_step(run: cpu_run.Run) -> dict:
    assert len(run.advantages) == 1, f"expected one advantage step, got {len(run.advantages)}"
    step = run.advantages[0]
    assert len(step["uid"]) == 4 and len(set(step["uid"])) == 2  # 2 prompts x G = 2
    return step


def _groups(step: dict) -> list[list[int]]:
    uid = step["uid"]
    return [[i for i, u in enumerate(uid) if u == g] for g in dict.fromkeys(uid)]


def _row_advantage(step: dict, i: int) -> torch.Tensor:
    """The advantages on row ``i``'s generated tokens."""
    return step["advantages"][i][step["response_mask"][i].bool()]


def _check_weights_changed_and_metrics_finite(run: cpu_run.Run, model_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText

    assert [w["global_steps"] for w in run.weights][:1] is not None
    assert len(run.weights) == 2, "expected a weight sync before the step and one after the update"
    before, after = run.weights[0]["state"], run.weights[1]["state"]
    initial = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).state_dict()
    common = [k for k in before if k in initial]
    assert common, "the synced weights share no name with the checkpoint"
    assert all(torch.equal(before[k], initial[k]) for k in common), "first sync is not the initial checkpoint"
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2, f"only {len(changed)}/{len(before)} tensors changed in the update"
    assert all(torch.isfinite(t).all() for t in after.values())

    assert run.metrics, "verl's file logger wrote no metrics"
    last = run.metrics[-1]["data"]
    numbers = {k: v for k, v in last.items() if isinstance(v, (int, float))}
    bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
    assert not bad, f"non-finite metrics: {bad}"
    assert numbers.get("actor/grad_norm", 0.0) > 0.0
    assert "actor/pg_loss" in numbers


def _report(name: str, run: cpu_run.Run) -> None:
    print(f"\n[{name}] main_ppo took {run.seconds:.0f} s, peak RSS {run.peak_rss_gb:.1f} GB")


def test_grpo_end_to_end(tmp_path):
    """Baseline: same zoom, one right and one wrong answer per prompt -> GRPO's +-1/sqrt(2)."""
    script = [[cpu_run.zoom(cpu_run.RED_BOX), cpu_run.answer("A")],
              [cpu_run.zoom(cpu_run.RED_BOX, thought="look again"), cpu_run.answer("B")]]
    run = cpu_run.launch(tmp_path / "grpo", "grpo", script)
    _report("grpo", run)
    step = _only_step(run)
    assert step["estimator"] == "grpo"
    rewards = step["token_level_rewards"].sum(-1)
    for group in _groups(step):
        assert sorted(rewards[group].tolist()) == [0.0, 1.0]
        for i in group:
            expected = INV_SQRT2 if rewards[i] == 1.0 else -INV_SQRT2
            assert torch.allclose(_row_advantage(step, i), torch.tensor(expected), atol=1e-4)
    _check_weights_changed_and_metrics_finite(run, tmp_path / "grpo" / "model")


def test_mapo_end_to_end(tmp_path):
    """Equal reward, zoom scores ~0.8 vs 0.0 -> advantages differ by beta * 2/sqrt(2), as mapo predicts (in a
    group of two, norm_G maps any two different scores to +-1/sqrt(2))."""
    script = [[cpu_run.zoom(cpu_run.RED_BOX), cpu_run.answer("A")],
              [cpu_run.zoom(cpu_run.GREY_BOX), cpu_run.answer("A")]]
    run = cpu_run.launch(tmp_path / "mapo", "mapo", script)
    _report("mapo", run)
    step = _only_step(run)
    assert step["estimator"] == "mapo"
    rewards = step["token_level_rewards"].sum(-1)
    assert rewards.tolist() == [1.0] * 4, "both rollouts answer right: equal rewards"
    scores = [[r["score"] for r in recs] for recs in step["mapo_turns"]]
    for group in _groups(step):
        aligned, misaligned = sorted(group, key=lambda i: -scores[i][0])
        # the crop shown is the box grown to the model's grid, so the red square fills most of it, not all
        assert scores[aligned][0] > 0.5 and scores[misaligned][0] == pytest.approx(0.0)
        a, b = _row_advantage(step, aligned), _row_advantage(step, misaligned)
        assert torch.allclose(a, a[0]) and torch.allclose(b, b[0])  # one advantage per trajectory
        assert float(a[0] - b[0]) == pytest.approx(BETA * 2 * INV_SQRT2, abs=1e-4)
        assert float(a[0]) == pytest.approx(BETA * INV_SQRT2, abs=1e-4)
    # and exactly mapo.core's estimator on what verl carried
    turns = turn_tensors(step["mapo_turns"], step["response_mask"])
    expected, _ = get_advantage("mapo")(step["token_level_rewards"], step["response_mask"],
                                        np.array(step["uid"]), turn_scores=turns["turn_scores"],
                                        turn_mask=turns["turn_mask"], beta=BETA, lam=0.95)
    assert torch.allclose(step["advantages"], expected, atol=1e-5)
    _check_weights_changed_and_metrics_finite(run, tmp_path / "mapo" / "model")


def test_mapo_turn_end_to_end(tmp_path):
    """Two zooms per trajectory, aligned then misaligned (or the reverse): each turn's tokens get their own
    semantic credit, equal to mapo.core's mapo_turn on the carried records."""
    script = [[cpu_run.zoom(cpu_run.RED_BOX), cpu_run.zoom(cpu_run.GREY_BOX), cpu_run.answer("A")],
              [cpu_run.zoom(cpu_run.GREY_BOX), cpu_run.zoom(cpu_run.RED_BOX), cpu_run.answer("A")]]
    run = cpu_run.launch(tmp_path / "mapo_turn", "mapo_turn", script)
    _report("mapo_turn", run)
    step = _only_step(run)
    assert step["estimator"] == "mapo_turn"
    turns = turn_tensors(step["mapo_turns"], step["response_mask"])
    assert turns["turn_mask"].sum(-1).tolist() == [2, 2, 2, 2]
    expected, _ = get_advantage("mapo_turn")(step["token_level_rewards"], step["response_mask"],
                                             np.array(step["uid"]), turn_scores=turns["turn_scores"],
                                             turn_mask=turns["turn_mask"], token_turn=turns["token_turn"],
                                             beta=BETA, lam=0.95)
    assert torch.allclose(step["advantages"], expected, atol=1e-5)
    for i in range(4):
        first = step["advantages"][i][turns["token_turn"][i] == 0]
        second = step["advantages"][i][turns["token_turn"][i] == 1]
        assert first.numel() and second.numel()
        # the turn that zoomed on the red square gets the higher advantage, inside one trajectory
        aligned_first = turns["turn_scores"][i, 0] > turns["turn_scores"][i, 1]
        assert (first[0] > second[0]) == bool(aligned_first)
    _check_weights_changed_and_metrics_finite(run, tmp_path / "mapo_turn" / "model")
