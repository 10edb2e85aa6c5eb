"""Benchmark scores from per-item result records (pure functions, no model).

A record is one line of ``results.jsonl`` (see ``mapo.eval.records``): an item with ``samples`` (k of them for
Avg@k), each with ``correct``; an item that failed to load has ``error`` and no samples and scores 0 — failures
lower the score, they are never dropped from the denominator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from statistics import mean
from typing import Any

from mapo.eval.behaviour import answer_concentration, label_drift, repetition_rate

Record = dict[str, Any]


def item_score(record: Record) -> float:
    """Mean correctness over the item's samples (its Avg@k contribution); 0 for a failed item."""
    samples = record.get("samples") or []
    if record.get("error") or not samples:
        return 0.0
    return sum(bool(s.get("correct")) for s in samples) / len(samples)


def item_pass(record: Record) -> float:
    """1 when any sample is correct (Pass@k)."""
    return float(any(s.get("correct") for s in record.get("samples") or []) and not record.get("error"))


def _mean(values: Sequence[float]) -> float | None:
    return float(mean(values)) if values else None


def accuracy_by(records: Sequence[Record], key: str) -> dict[str, float]:
    """Mean item score per value of ``key`` (a top-level field such as ``category``, or a ``groups`` entry)."""
    buckets: dict[str, list[float]] = defaultdict(list)
    for r in records:
        value = r.get(key) if key in r else (r.get("groups") or {}).get(key)
        if value not in (None, ""):
            buckets[str(value)].append(item_score(r))
    return {k: float(mean(v)) for k, v in sorted(buckets.items())}


def hrbench_accuracy(records: Sequence[Record]) -> dict[str, Any]:
    """HR-Bench protocol: accuracy per category (and ``all``) within each ``cycle_category``, then the mean over
    cycles. A category missing from some cycle is averaged over the cycles that have it.

    Returns ``{"cycles": {cycle: {"all": acc, category: acc}}, "average": {"all": acc, category: acc}}``.
    """
    by_cycle: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_cycle[str((r.get("groups") or {}).get("cycle_category") or "")].append(r)
    cycles: dict[str, dict[str, float]] = {}
    for cycle, rows in sorted(by_cycle.items()):
        scores = {"all": float(mean(item_score(r) for r in rows))}
        scores.update(accuracy_by(rows, "category"))
        cycles[cycle] = scores
    keys = sorted({k for c in cycles.values() for k in c}, key=lambda k: (k != "all", k))
    average = {k: float(mean(c[k] for c in cycles.values() if k in c)) for k in keys}
    return {"cycles": cycles, "average": average}


def _samples(records: Iterable[Record]) -> list[dict]:
    return [s for r in records if not r.get("error") for s in r.get("samples") or []]


def tool_statistics(records: Sequence[Record]) -> dict[str, float | None]:
    """Tool use over all samples: how often the model zoomed, how many calls were valid, turns, caps, format."""
    samples = _samples(records)
    calls = [t for s in samples for t in s.get("turns", []) if t.get("kind") == "tool_call"]
    return {
        "tool_call_rate": _mean([float(s.get("n_tool_calls", 0) > 0) for s in samples]),
        "calls_per_sample": _mean([float(s.get("n_tool_calls", 0)) for s in samples]),
        "valid_call_rate": _mean([float(not t.get("error")) for t in calls]),
        "turns_per_sample": _mean([float(len(s.get("turns", []))) for s in samples]),
        "turn_cap_rate": _mean([float(bool(s.get("hit_turn_cap"))) for s in samples]),
        "answered_rate": _mean([float(s.get("prediction") is not None) for s in samples]),
        "format_error_rate": _mean([float(not s.get("format_ok", True)) for s in samples]),
    }


def alignment_statistics(records: Sequence[Record]) -> dict[str, float | None]:
    """Verifier alignment of each zoom's label/description with its crop (only turns that were scored)."""
    samples = _samples(records)

    def scores(group):
        return [t["alignment"] for s in group for t in s.get("turns", []) if t.get("alignment") is not None]

    all_scores = scores(samples)
    if not all_scores:
        return {"mean": None, "correct": None, "wrong": None, "n_scored": 0}
    return {"mean": _mean(all_scores), "correct": _mean(scores([s for s in samples if s.get("correct")])),
            "wrong": _mean(scores([s for s in samples if not s.get("correct")])), "n_scored": len(all_scores)}


def box_statistics(records: Sequence[Record]) -> dict[str, float | None]:
    """Crop IoU and hit rate against known target boxes, and the reasoning-action gap.

    ``mean_iou``: over successful zooms of items with targets (best IoU per zoom). ``hit_rate``: share of samples
    whose zooms covered every target, among samples that zoomed. ``gap``: share of correct samples whose zooms
    missed the target (right for the wrong visual reason), among correct samples that zoomed.
    """
    samples = [s for r in records if not r.get("error") and r.get("targets") for s in r.get("samples") or []]
    ious = [t["iou"] for s in samples for t in s.get("turns", []) if t.get("iou") is not None]
    judged = [s for s in samples if s.get("zoom_hit") is not None]
    correct = [s for s in judged if s.get("correct")]
    return {
        "mean_iou": _mean(ious),
        "hit_rate": _mean([float(s["zoom_hit"]) for s in judged]),
        "gap": _mean([float(not s["zoom_hit"]) for s in correct]),
        "n_samples_with_targets": len(samples),
    }


def behaviour_statistics(records: Sequence[Record]) -> dict[str, float | None]:
    """``label_drift`` (zoom labels not naming the question's object), ``repetition_rate`` (degenerate
    responses) and ``answer_concentration`` (share of answers that are the most common one) over every sample
    (``mapo.eval.behaviour``; None when nothing can be judged)."""
    labels, texts, answers = [], [], []
    for r in records:
        for s in r.get("samples") or []:
            texts.append("".join(t.get("text") or "" for t in s.get("turns") or []))
            labels.extend((t.get("claim") or "", r.get("question") or "", r.get("target_names") or [])
                          for t in s.get("turns") or [] if t.get("kind") == "tool_call")
            answers.append(s.get("prediction"))
    return {"label_drift": label_drift(labels), "repetition_rate": repetition_rate(texts),
            "answer_concentration": answer_concentration(answers)}


def summarize(records: Sequence[Record]) -> dict[str, Any]:
    """Every score of an evaluation: overall accuracy (= Avg@k), Pass@k, per category and per group, HR-Bench
    cycle averages when items carry ``cycle_category``, tool, alignment and box statistics, errors."""
    records = list(records)
    k_values = sorted({len(r.get("samples") or []) for r in records if not r.get("error")})
    group_keys = sorted({g for r in records for g, v in (r.get("groups") or {}).items()
                         if v not in (None, "") and g != "cycle_category"})
    summary: dict[str, Any] = {
        "n_items": len(records),
        "n_errors": sum(1 for r in records if r.get("error")),
        "k": k_values[0] if len(k_values) == 1 else k_values,
        "accuracy": _mean([item_score(r) for r in records]),
        "pass_at_k": _mean([item_pass(r) for r in records]),
        "per_category": accuracy_by(records, "category"),
        "per_group": {g: accuracy_by(records, g) for g in group_keys},
        "tools": tool_statistics(records),
        "alignment": alignment_statistics(records),
        "boxes": box_statistics(records),
        "behaviour": behaviour_statistics(records),
        "errors": [{"id": r["id"], "error": r["error"]} for r in records if r.get("error")][:50],
        # Items whose label disagrees with the benchmark's own annotation (V*): a data problem to look at.
        "label_mismatches": [r["id"] for r in records if r.get("label_matches_annotation") is False],
    }
    if any((r.get("groups") or {}).get("cycle_category") for r in records):
        summary["hrbench"] = hrbench_accuracy(records)
        # The HR-Bench headline number is the cycle-averaged accuracy, not the plain mean over rows.
        summary["accuracy"] = summary["hrbench"]["average"]["all"]
    return summary
