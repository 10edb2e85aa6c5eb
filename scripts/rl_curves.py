"""Learning curves of RL runs from their metrics.jsonl: val accuracy and crop-hit (greedy and temperature 1)
against RL step, mean and min-max band over the seeds of each named group, plus a per-seed table and each
run's means of the theory's quantities (theory/*) and training-side label drift over its steps.

    python scripts/rl_curves.py OUT.png NAME=run_dir[,run_dir...] [NAME=...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from mapo.report.plots import plot_curves
from mapo.train.metrics_log import read_metrics
from mapo.train.summary import mean_ci95

THEORY = ("theory/outcome_std", "theory/semantic_std", "theory/std_ratio", "theory/within_corr",
          "theory/const_outcome_share", "theory/semantic_only_share", "label_drift", "repetition_rate")
KEYS = ("eval/accuracy", "eval/crop_hit_rate", "eval/gap", "eval_t1/accuracy", "eval_t1/crop_hit_rate",
        "eval/label_drift")


def main(out: str, groups: list[str]) -> None:
    band = {}
    for spec in groups:
        name, dirs = spec.split("=", 1)
        band[name] = [[r for r in read_metrics(d) if "eval/accuracy" in r] for d in dirs.split(",")]
    plot_curves({}, KEYS, Path(out), title="RL from the demo's SFT checkpoint (val split, 100 tasks)", band=band)
    for spec in groups:
        name, dirs = spec.split("=", 1)
        for d in dirs.split(","):
            steps = [r for r in read_metrics(d) if r.get("step", 0) > 0]
            means = {k.split("/")[-1]: mean_ci95([r.get(k) for r in steps])[0] for k in THEORY}
            print(f"{name} {d} ({len(steps)} steps): " + " ".join(f"{k}={v:.3f}" for k, v in means.items()))
    for name, runs in band.items():
        print(f"{name}: step, then per-seed eval/accuracy | eval/crop_hit_rate | eval_t1/accuracy")
        for step in sorted({r["step"] for rs in runs for r in rs}):
            at = [next((r for r in rs if r["step"] == step), None) for rs in runs]
            cells = [f"{r['eval/accuracy']:.2f} | {r['eval/crop_hit_rate']:.2f} | {r.get('eval_t1/accuracy', float('nan')):.2f}"
                     if r else "—" for r in at]
            acc = mean_ci95([r["eval/accuracy"] for r in at if r])
            print(f"  {step:3d}: " + "   ".join(cells) + f"   mean greedy acc {acc[0]:.3f} ± {acc[1]:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
