"""Per-step statistics of a batch of trajectories (pure functions over records; no model).

Box figures use the evaluation's definitions (``mapo.data.boxes``), so training curves and `mapo eval` agree:
- ``zoom_hit_rate``: share of successful zooms (on tasks with known targets) covering >= ``hit_fraction`` of
  some target; ``crop_iou``: their mean best IoU;
- ``crop_hit_rate``: share of trajectories that zoomed whose zooms covered **every** target;
- ``gap`` (the reasoning-action gap): share of correct trajectories that zoomed whose zooms missed a target;
- ``label_drift``: share of zoom labels that do not name the question's object; ``repetition_rate``: share of
  responses repeating a 1-3 word unit 4+ times in a row (``mapo.eval.behaviour``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mapo.agent.trajectory import Trajectory
from mapo.data.boxes import DEFAULT_HIT_FRACTION, best_iou, zoom_hits_target, zooms_cover_targets
from mapo.eval.behaviour import label_drift, repetition_rate


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def executed_zooms(traj: Trajectory) -> list:
    """Executed boxes (pixels of the original image) of the successful zooms of ``traj``."""
    return [rec.tool.box_executed for rec in traj.tool_calls
            if rec.tool is not None and rec.tool.ok and rec.tool.box_executed is not None]


def batch_stats(trajs: Sequence[Trajectory], infos: Sequence[dict[str, Any]],
                turn_scores: Sequence[Sequence[float]], *,
                hit_fraction: float = DEFAULT_HIT_FRACTION) -> dict[str, float]:
    """Rollout metrics of one batch. ``infos``: the outcome-reward info per trajectory (``correct``,
    ``format_ok``); ``turn_scores``: verifier scores per tool call, aligned with ``traj.tool_calls``."""
    n = len(trajs)
    calls = [rec for t in trajs for rec in t.tool_calls]
    turns = [rec for t in trajs for rec in t.turns]
    correct = [bool(i.get("correct")) for i in infos]
    zooms = [executed_zooms(t) if t.task.targets else [] for t in trajs]
    per_zoom = [(zoom_hits_target(z, t.task.targets, hit_fraction), best_iou(z, t.task.targets))
                for t, zs in zip(trajs, zooms) for z in zs]
    covered = [zooms_cover_targets(zs, t.task.targets, hit_fraction) for t, zs in zip(trajs, zooms)]
    judged = [i for i, c in enumerate(covered) if c is not None]
    scores = [s for row in turn_scores for s in row if math.isfinite(s)]
    lengths = [float(t.response_mask.sum()) for t in trajs]
    return {
        "accuracy": _mean([float(c) for c in correct]),
        "format_error_rate": _mean([0.0 if i.get("format_ok", True) else 1.0 for i in infos]),
        "parse_error_rate": _mean([1.0 if r.parsed.kind == "error" else 0.0 for r in turns]),
        "answer_rate": _mean([1.0 if t.answer is not None else 0.0 for t in trajs]),
        "tool_call_rate": _mean([1.0 if t.tool_calls else 0.0 for t in trajs]),
        "first_turn_call_rate": _mean([1.0 if t.turns and t.turns[0].parsed.kind == "tool_call" else 0.0
                                       for t in trajs]),
        "calls_per_traj": len(calls) / n if n else float("nan"),
        "valid_call_rate": _mean([1.0 if r.tool is not None and r.tool.ok else 0.0 for r in calls]),
        "turns": _mean([float(len(t.turns)) for t in trajs]),
        "turn_cap_rate": _mean([1.0 if t.hit_turn_cap else 0.0 for t in trajs]),
        "alignment": _mean(scores),
        "zoom_hit_rate": _mean([1.0 if h else 0.0 for h, _ in per_zoom]),
        "crop_iou": _mean([iou for _, iou in per_zoom]),
        "crop_hit_rate": _mean([1.0 if covered[i] else 0.0 for i in judged]),
        "gap": _mean([0.0 if covered[i] else 1.0 for i in judged if correct[i]]),
        "response_length": _mean(lengths),
        "label_drift": _or_nan(label_drift((rec.claim or "", t.task.question, t.task.target_names)
                                           for t in trajs for rec in t.tool_calls)),
        "repetition_rate": _or_nan(repetition_rate("".join(r.text for r in t.turns) for t in trajs)),
    }


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
