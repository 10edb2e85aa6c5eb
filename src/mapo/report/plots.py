"""Training-curve plots (matplotlib, headless Agg backend) from metrics records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(r.get("step", len(xs)))
            ys.append(float(v))
    return xs, ys


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points (window <= 1: unchanged)."""
    if window <= 1:
        return list(values)
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_curves(runs: dict[str, Sequence[dict[str, Any]]], keys: Sequence[str], path: str | Path, *,
                title: str = "", smoothing: int = 1, band: dict[str, Sequence[Sequence[dict[str, Any]]]] | None = None
                ) -> Path | None:
    """One panel per metric key, one line per run name. ``band`` maps a run name to its seed replicas: the
    line is their mean and a shaded band their min..max. Returns the PNG path (None when nothing to plot)."""
    keys = [k for k in keys if any(_series(recs, k)[1] for recs in runs.values())
            or (band and any(_series(r, k)[1] for reps in band.values() for r in reps))]
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for name, recs in runs.items():
            xs, ys = _series(recs, key)
            if ys:
                ax.plot(xs, smooth(ys, smoothing), label=name)
        for name, replicas in (band or {}).items():
            per_step: dict[float, list[float]] = {}
            for recs in replicas:
                xs, ys = _series(recs, key)
                for x, y in zip(xs, smooth(ys, smoothing)):
                    per_step.setdefault(x, []).append(y)
            if per_step:
                steps = sorted(per_step)
                mean = [sum(per_step[s]) / len(per_step[s]) for s in steps]
                (line,) = ax.plot(steps, mean, label=name)
                ax.fill_between(steps, [min(per_step[s]) for s in steps], [max(per_step[s]) for s in steps],
                                color=line.get_color(), alpha=0.2)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
