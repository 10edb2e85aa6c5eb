"""`mapo compare`: GRPO vs MAPO (and MAPO-turn) from the same SFT checkpoint, the same rollout budget, several
seeds. Writes ``out_dir/{results.md, results.json, curves.png, test_accuracy.png, <estimator>_s<seed>/}`` and
prints the table: final test accuracy (mean ± std over seeds), alignment, crop-hit rate, reasoning-action gap,
gradient-variance ratio to GRPO, and how many seeds collapsed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import matplotlib.pyplot as plt
from pydantic import Field

from mapo.report.html import write_summary
from mapo.report.plots import plot_curves
from mapo.report.run_report import dig, print_table
from mapo.train.config import Section, TrainConfig
from mapo.train.demo import DemoConfig, _run_rl, _stamp_of, _step, deep_merge, evaluate, prepare, rl_config
from mapo.train.metrics_log import read_metrics
from mapo.train.summary import collapsed, finite, mean_ci95, pm, window_mean

log = logging.getLogger("mapo.compare")


class CompareConfig(Section):
    """`mapo compare`: estimators x seeds from one SFT checkpoint (the demo's, built or reused first)."""

    command: ClassVar[str] = "mapo compare"

    out_dir: str = Field("runs/compare", description="Where runs, table and plots go.")
    demo: DemoConfig = Field(default_factory=DemoConfig,
                             description="The pipeline that provides world, verifier and the SFT checkpoint "
                                         "(its steps are reused when already built, e.g. by `mapo demo`).")
    estimators: list[str] = Field(default_factory=lambda: ["grpo", "mapo", "mapo_turn"],
                                  description="Advantage estimators compared (registry names).")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4],
                             description="RL seeds per estimator (>= 5 for 95% CIs that separate estimators).")
    rl: TrainConfig = Field(default_factory=lambda: TrainConfig.model_validate({"run": {"total_steps": 20}}),
                            description="TrainConfig keys set for every run on top of the demo's `rl` (only the "
                                        "keys given count; the same rollout budget for all estimators).")
    eval_limit: int = Field(100, ge=1, description="Test-split tasks evaluated per run.")
    collapse_min_tool_rate: float = Field(0.1, description="Collapse: final tool-call rate below this ...")
    collapse_max_format_error: float = Field(0.5, description="... or final format-error rate above this.")
    final_window: float = Field(0.2, description="Share of the last RL steps averaged for training-side figures.")


def run_config(cfg: CompareConfig, root: Path, estimator: str, seed: int) -> TrainConfig:
    base = rl_config(cfg.demo, root)
    data = deep_merge(base.model_dump(mode="json"), cfg.rl.model_dump(mode="json", exclude_unset=True))
    data["seed"] = seed
    data["algorithm"]["estimator"] = estimator
    data["run"]["out_dir"] = str(Path(cfg.out_dir) / f"{estimator}_s{seed}")
    data["run"]["save_every"] = max(1, data["run"]["total_steps"])
    return TrainConfig.model_validate(data)


def run_compare(cfg: CompareConfig) -> dict[str, Any]:
    if len(cfg.seeds) < 3:
        log.warning("compare: %d seed(s); the mission asks for >= 3 to report mean ± std", len(cfg.seeds))
    t0 = time.perf_counter()
    root = prepare(cfg.demo)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    demo_eval = cfg.demo.model_copy(update={"eval_limit": cfg.eval_limit})
    test = root / "world" / "test.parquet"
    # the starting point every run shares: the table's baseline row (label drift is judged against it)
    sft = evaluate(demo_eval, root / "sft" / "final", test, out / "sft" / "eval", root / "verifier",
                   model_id=f"sft:{_stamp_of(root / 'sft')}")
    runs: dict[str, list[dict[str, Any]]] = {}
    for estimator in cfg.estimators:
        for seed in cfg.seeds:
            rcfg = run_config(cfg, root, estimator, seed)
            run_dir = Path(rcfg.run.out_dir)
            inputs = {"rl": rcfg.model_dump(mode="json"), "sft": _stamp_of(root / "sft"),
                      "verifier": _stamp_of(root / "verifier")}
            _step(f"{estimator} seed {seed}", run_dir, inputs, lambda rcfg=rcfg, inputs=inputs: _run_rl(rcfg, inputs))
            summary = evaluate(demo_eval, run_dir / "final", test, run_dir / "eval",
                               root / "verifier", model_id=f"{run_dir.name}:{_stamp_of(run_dir)}")
            runs.setdefault(estimator, []).append({"seed": seed, "metrics": read_metrics(run_dir), "eval": summary,
                                                   "config": inputs["rl"]})
    result = summarise(runs, cfg, sft=sft)
    result["minutes"] = (time.perf_counter() - t0) / 60
    write_outputs(out, runs, result, cfg)
    return result


#: How the plots name each estimator.
ESTIMATOR_NAMES = {"grpo": "GRPO", "mapo": "MAPO", "mapo_turn": "MAPO-turn"}

#: Evaluation-side table columns: result key -> path in an evaluation summary.
EVAL_COLUMNS = {"test_accuracy": ("accuracy",), "alignment": ("alignment", "mean"),
                "crop_hit_rate": ("boxes", "hit_rate"), "gap": ("boxes", "gap"),
                "tool_call_rate": ("tools", "tool_call_rate"), "label_drift": ("behaviour", "label_drift"),
                "repetition": ("behaviour", "repetition_rate"),
                "answer_concentration": ("behaviour", "answer_concentration")}
#: Columns of the paired table: each estimator minus GRPO, seed by seed (runs of one seed share the SFT
#: checkpoint and the seed, so the paired difference removes the between-seed spread).
PAIRED_COLUMNS = ("test_accuracy", "crop_hit_rate", "alignment", "gap", "label_drift")


def summarise(runs: dict[str, list[dict[str, Any]]], cfg: CompareConfig,
              sft: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-estimator statistics over seeds, the SFT baseline row (one evaluation, no CI) when given, and each
    estimator's paired difference to GRPO (pure: run records in, table rows out)."""
    def train_side(r, key):
        return window_mean(r["metrics"], key, last=cfg.final_window)

    def grad_var(rs, key):
        return mean_ci95([window_mean(r["metrics"], key) for r in rs])[0]

    def over_seeds(rs, path):
        return mean_ci95([dig(r["eval"], path) for r in rs])

    base = runs.get("grpo")
    rows = {}
    for est, rs in runs.items():
        row = {
            **{k: over_seeds(rs, path) for k, path in EVAL_COLUMNS.items()},
            # keyed by the seed as text: the same mapping before and after results.json
            "per_seed_accuracy": {str(r["seed"]): dig(r["eval"], ("accuracy",)) for r in rs},
            "train_alignment": mean_ci95([train_side(r, "alignment") for r in rs]),
            # what MAPO's variance argument assumes, over every step of every seed
            "std_ratio": mean_ci95([window_mean(r["metrics"], "theory/std_ratio") for r in rs]),
            "within_corr": mean_ci95([window_mean(r["metrics"], "theory/within_corr") for r in rs]),
            "semantic_only_share": mean_ci95([window_mean(r["metrics"], "theory/semantic_only_share") for r in rs]),
            "grad_var_ratio": _ratio(grad_var(rs, "grad_var"), grad_var(base, "grad_var") if base else math.nan),
            "grad_var_rel_ratio": _ratio(grad_var(rs, "grad_var_rel"),
                                         grad_var(base, "grad_var_rel") if base else math.nan),
            "collapsed": sum(collapsed(r["metrics"], min_tool_rate=cfg.collapse_min_tool_rate,
                                       max_format_error=cfg.collapse_max_format_error, window=cfg.final_window)
                             for r in rs),
            "seeds": len(rs),
        }
        rows[est] = row
    result: dict[str, Any] = {"rows": rows, "paired": paired_vs_grpo(runs)}
    if sft is not None:
        result["sft"] = {k: dig(sft, path) for k, path in EVAL_COLUMNS.items()}
    return result


def paired_vs_grpo(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """For each estimator but GRPO: mean ± 95% CI of (estimator - GRPO) over the seeds both ran."""
    base = {r["seed"]: r["eval"] for r in runs.get("grpo", [])}
    out = {}
    for est, rs in runs.items():
        pairs = [(r["eval"], base[r["seed"]]) for r in rs if est != "grpo" and r["seed"] in base]
        if not pairs:
            continue
        out[est] = {k: mean_ci95([_sub(dig(a, EVAL_COLUMNS[k]), dig(b, EVAL_COLUMNS[k])) for a, b in pairs])
                    for k in PAIRED_COLUMNS}
        out[est]["seeds"] = len(pairs)
    return out


def _sub(a: Any, b: Any) -> float:
    both = finite([a, b])
    return both[0] - both[1] if len(both) == 2 else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


HEADER = ["estimator", "test accuracy", "alignment", "crop-hit rate", "gap", "tool-call rate", "label drift",
          "repetition", "top answer share", "grad var / GRPO", "grad noise-to-signal / GRPO", "std(S)/std(R)", "corr(R, S)",
          "const-R groups moved by S", "collapsed"]


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table cells: mean ± 95% CI half-width over seeds (Student t)."""
    rows = []
    if "sft" in result:  # one evaluation of the shared starting point: no spread, no training-side columns
        rows.append(["SFT (start)", *(_num3(result["sft"][k]) for k in EVAL_COLUMNS), *["—"] * 5, "—"])
    for est, r in result["rows"].items():
        rows.append([est, *(pm(*r[k]) for k in ("test_accuracy", "alignment", "crop_hit_rate", "gap",
                                                 "tool_call_rate", "label_drift", "repetition",
                                                 "answer_concentration")),
                     _num(r["grad_var_ratio"]), _num(r["grad_var_rel_ratio"]),
                     *(pm(*r[k], digits=2) for k in ("std_ratio", "within_corr", "semantic_only_share")),
                     f"{'yes' if r['collapsed'] else 'no'} ({r['collapsed']}/{r['seeds']})"])
    return rows


def _num(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "—"


def _num3(x: Any) -> str:
    return f"{float(x):.3f}" if finite([x]) else "—"


PAIRED_HEADER = ["estimator - GRPO", "test accuracy", "crop-hit rate", "alignment", "gap", "label drift", "seeds"]


def paired_rows(result: dict[str, Any]) -> list[list[str]]:
    """The paired table's cells: mean difference ± 95% CI half-width (an interval excluding 0 separates them)."""
    return [[est, *(pm(*d[k], digits=3) for k in PAIRED_COLUMNS), str(d["seeds"])]
            for est, d in result.get("paired", {}).items()]


def per_seed_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-seed test accuracies."""
    seeds = sorted({s for r in result["rows"].values() for s in r.get("per_seed_accuracy", {})}, key=int)
    return ["estimator", *(f"seed {s}" for s in seeds)], [
        [est, *(_num3(r.get("per_seed_accuracy", {}).get(s)) for s in seeds)] for est, r in result["rows"].items()]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(out: Path, runs: dict[str, list[dict[str, Any]]], result: dict[str, Any],
                  cfg: CompareConfig) -> None:
    rows = table_rows(result)
    band = {est: [r["metrics"] for r in rs] for est, rs in runs.items()}
    curves = plot_curves({}, ("accuracy", "reward", "alignment", "tool_call_rate", "crop_hit_rate", "gap",
                              "grad_var", "grad_var_rel", "entropy"), out / "curves.png",
                         title=f"{' vs '.join(ESTIMATOR_NAMES.get(e, e) for e in runs)}, {len(cfg.seeds)} seeds "
                               "(mean, min-max band)", smoothing=3, band=band)
    acc = _accuracy_plot(runs, out / "test_accuracy.png")
    steps = sorted({r["config"]["run"]["total_steps"] for rs in runs.values() for r in rs if "config" in r})
    md = (f"Same SFT checkpoint, same rollout budget ({', '.join(map(str, steps)) or '?'} RL steps each), "
          f"seeds {cfg.seeds}; test split of the embedded world, {cfg.eval_limit} tasks; mean ± 95% CI "
          f"half-width over seeds (Student t).\n\n{markdown_table(HEADER, rows)}\n"
          "\nEach estimator minus GRPO, paired by seed (mean ± 95% CI):\n\n"
          f"{markdown_table(PAIRED_HEADER, paired_rows(result))}\n\nTest accuracy per seed:\n\n"
          f"{markdown_table(*per_seed_table(result))}\n")
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    html_rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    write_summary(out / "index.html", title="mapo compare",
                  sections=[("Results", f"<table><tr>{head}</tr>{html_rows}</table>")],
                  images=[p for p in (curves, acc) if p is not None])
    print_table("mapo compare", HEADER, rows)
    if result.get("paired"):
        print_table("each estimator minus GRPO, paired by seed", PAIRED_HEADER, paired_rows(result))


def _accuracy_plot(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for x, (est, rs) in enumerate(runs.items()):
        ys = [dig(r["eval"], ("accuracy",)) for r in rs]
        ys = [y for y in ys if isinstance(y, (int, float))]
        if ys:
            ax.bar(x, sum(ys) / len(ys), color=f"C{x}", alpha=0.5)
            ax.scatter([x] * len(ys), ys, color=f"C{x}", zorder=3)
    ax.set_xticks(range(len(runs)), list(runs))
    ax.set_ylabel("test accuracy")
    ax.set_title("final test accuracy per seed")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
