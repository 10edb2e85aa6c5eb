"""The demo's report folder: training curves (PNG), the final evaluation table, an HTML summary, a JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mapo.report.html import fmt, table_html, write_summary
from mapo.report.plots import plot_curves

#: RL curves worth a panel each (the metrics every RL step logs).
RL_KEYS = ("accuracy", "reward", "alignment", "tool_call_rate", "valid_call_rate", "crop_hit_rate", "gap",
           "crop_iou", "format_error_rate", "turns", "response_length", "entropy", "clip_frac", "grad_norm",
           "grad_var", "grad_var_rel", "label_drift", "repetition_rate", "eval/accuracy", "eval/crop_hit_rate",
           "eval/gap", "eval/label_drift", "eval_t1/accuracy", "eval_t1/crop_hit_rate", "theory/std_ratio",
           "theory/within_corr", "theory/semantic_only_share")

#: Columns of the final table: (header, path into an evaluation summary of `mapo eval`).
EVAL_COLUMNS = (
    ("accuracy", ("accuracy",)),
    ("1st-turn call", ("tools", "first_turn_call_rate")),
    ("tool-call rate", ("tools", "tool_call_rate")),
    ("valid calls", ("tools", "valid_call_rate")),
    ("crop-hit rate", ("boxes", "hit_rate")),
    ("IoU", ("boxes", "mean_iou")),
    ("alignment", ("alignment", "mean")),
    ("gap", ("boxes", "gap")),
    ("format errors", ("tools", "format_error_rate")),
    ("label drift", ("behaviour", "label_drift")),
    ("repetition", ("behaviour", "repetition_rate")),
    ("top answer share", ("behaviour", "answer_concentration")),
)


def dig(summary: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = summary
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def first_turn_call_rate(results_jsonl: str | Path) -> float | None:
    """Share of evaluated samples whose first assistant turn is a parseable tool call (from `mapo eval`'s
    per-item records)."""
    path = Path(results_jsonl)
    if not path.exists():
        return None
    firsts = [bool(s.get("turns")) and s["turns"][0].get("kind") == "tool_call"
              for line in path.read_text().splitlines() if line.strip()
              for s in (json.loads(line).get("samples") or [])]
    return sum(firsts) / len(firsts) if firsts else None


def eval_rows(evals: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """One row per evaluated model: its name then the EVAL_COLUMNS values."""
    return [[name, *[dig(s, path) for _, path in EVAL_COLUMNS]] for name, s in evals.items()]


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*[fmt(c) for c in row])
    Console(width=160).print(table)


def stage_rows(stage_seconds: dict[str, float | None], minutes: float | None,
               packaged: dict[str, float | None] | None = None) -> list[list[str]]:
    """One row per pipeline step: its seconds, or "reused" for a step an earlier run had built; then the total.
    ``packaged``: steps installed from an asset shipped with mapo, with the seconds their build took."""
    packaged = packaged or {}

    def cell(name: str, sec: float | None) -> str:
        text = "reused" if sec is None else f"{sec:.0f}"
        if name in packaged:
            built = packaged[name]
            text += " (packaged" + (f", built in {built:.0f} s" if built is not None else "") + ")"
        return text

    rows = [[name, cell(name, sec)] for name, sec in stage_seconds.items()]
    if minutes is not None:
        rows.append(["total (wall)", f"{minutes * 60:.0f}"])
    return rows


def write_run_report(out: str | Path, *, sft: list[dict[str, Any]], rl: list[dict[str, Any]],
                     evals: dict[str, dict[str, Any]], minutes: float | None = None,
                     stage_seconds: dict[str, float | None] | None = None,
                     parallel: bool | None = None,
                     packaged: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Write ``out/{index.html, rl_curves.png, sft_loss.png, summary.json}``, print the final table (and the
    steps' times), and return the summary dict. ``sft`` and ``rl`` are the runs' metric records (one dict per
    step, as in their ``metrics.jsonl``): the report draws data, it does not read training logs itself.
    ``stage_seconds``: each step's seconds (None: reused); ``parallel``: whether some ran in a second process
    (then they overlap, and the total is less than their sum); ``packaged``: the steps installed from an asset
    shipped with mapo rather than built, with the seconds their build took."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = [p for p in (
        plot_curves({"MAPO": rl}, RL_KEYS, out / "rl_curves.png", title="RL (MAPO) on the embedded world",
                    smoothing=3),
        plot_curves({"SFT": sft}, ("loss", "lr"), out / "sft_loss.png", title="cold-start SFT"),
    ) if p is not None]
    header = ["model", *[h for h, _ in EVAL_COLUMNS]]
    rows = eval_rows(evals)
    sections = [("Test-split evaluation", table_html(header, rows))]
    times = stage_rows(stage_seconds or {}, minutes, packaged)
    time_title = "Seconds per step" + (" (vision warm-up and verifier in a second process, overlapping the rest)"
                                       if parallel else "")
    if times:
        sections.append((time_title, table_html(["step", "seconds"], times)))
    write_summary(out / "index.html", title="mapo demo", sections=sections, images=images)
    summary = {"evaluation": {name: dict(zip(header[1:], row[1:])) for name, row in zip(evals, rows)},
               "minutes": minutes, "stage_seconds": stage_seconds or {}, "parallel": parallel,
               "packaged": packaged or {},
               "rl_steps": len(rl), "sft_steps": len(sft)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if times:
        print_table(time_title, ["step", "seconds"], times)
    print_table("mapo demo: test split", header, rows)
    return summary
