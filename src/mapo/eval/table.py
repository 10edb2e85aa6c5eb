"""The summary of an evaluation as a rich table for the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any, pct: bool = True) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}" if pct else f"{value:.3f}"
    return str(value)


def summary_table(summary: dict) -> Table:
    """Rows: headline accuracy, Pass@k, categories, HR-Bench cycles, tools, alignment, crop boxes, errors."""
    k = summary.get("k")
    table = Table(title=f"mapo eval — {summary.get('bench', '')} ({summary['n_items']} items, k={k})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    head = "accuracy (HR-Bench cycle average)" if "hrbench" in summary else f"accuracy (Avg@{k})"
    table.add_row(head, _fmt(summary["accuracy"]))
    table.add_row(f"Pass@{k}", _fmt(summary["pass_at_k"]))
    for name, acc in summary["per_category"].items():
        table.add_row(f"  category {name}", _fmt(acc))
    for group, values in summary.get("per_group", {}).items():
        for name, acc in values.items():
            table.add_row(f"  {group} {name}", _fmt(acc))
    for cycle, scores in summary.get("hrbench", {}).get("cycles", {}).items():
        table.add_row(f"  cycle {cycle}", " ".join(f"{c}={_fmt(v)}" for c, v in scores.items()))
    tools = summary["tools"]
    table.add_row("tool-call rate", _fmt(tools["tool_call_rate"]))
    table.add_row("calls / sample", _fmt(tools["calls_per_sample"], pct=False))
    table.add_row("valid-call rate", _fmt(tools["valid_call_rate"]))
    table.add_row("turn-cap rate", _fmt(tools["turn_cap_rate"]))
    table.add_row("format-error rate", _fmt(tools["format_error_rate"]))
    align = summary["alignment"]
    if align["n_scored"]:
        table.add_row("alignment (mean cos)", _fmt(align["mean"], pct=False))
        table.add_row("  when correct / wrong", f"{_fmt(align['correct'], False)} / {_fmt(align['wrong'], False)}")
    boxes = summary["boxes"]
    if boxes["n_samples_with_targets"]:
        table.add_row("crop IoU (mean)", _fmt(boxes["mean_iou"], pct=False))
        table.add_row("zoom hit rate", _fmt(boxes["hit_rate"]))
        table.add_row("gap (correct, zoom missed)", _fmt(boxes["gap"]))
    behaviour = summary.get("behaviour") or {}
    if behaviour.get("label_drift") is not None:
        table.add_row("label drift (label != question's object)", _fmt(behaviour["label_drift"]))
    if behaviour.get("repetition_rate") is not None:
        table.add_row("repetitive responses", _fmt(behaviour["repetition_rate"]))
    if behaviour.get("answer_concentration") is not None:
        table.add_row("most common answer's share", _fmt(behaviour["answer_concentration"]))
    table.add_row("items failed", str(summary["n_errors"]))
    if summary.get("label_mismatches"):
        table.add_row("label != annotation (check data)", str(len(summary["label_mismatches"])))
    return table


def print_summary(summary: dict, console: Console | None = None) -> None:
    (console or Console()).print(summary_table(summary))
