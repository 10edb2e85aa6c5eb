"""Pure summaries of finished runs: seed statistics, collapse detection, the comparison table rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))]


def mean_std(values: Sequence[Any]) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for one value) of the finite values; (nan, nan) when none."""
    xs = finite(values)
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


#: Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (beyond: the normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def mean_ci95(values: Sequence[Any]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t over seeds; NaN for < 2 values)."""
    xs = finite(values)
    m, s = mean_std(xs)
    if len(xs) < 2:
        return m, float("nan")
    df = len(xs) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    return m, t * s / math.sqrt(len(xs))


def window_mean(records: Sequence[dict[str, Any]], key: str, *, last: float | None = None,
                first: float | None = None) -> float:
    """Mean of ``key`` over the last (or first) fraction of the records (e.g. last=0.2: final 20% of steps)."""
    n = len(records)
    if n == 0:
        return float("nan")
    if last is not None:
        part = records[n - max(1, math.ceil(n * last)):]
    elif first is not None:
        part = records[:max(1, math.ceil(n * first))]
    else:
        part = records
    xs = finite([r.get(key) for r in part])
    return sum(xs) / len(xs) if xs else float("nan")


def collapsed(records: Sequence[dict[str, Any]], *, min_tool_rate: float = 0.1, max_format_error: float = 0.5,
              window: float = 0.2) -> bool:
    """A run collapsed when, over its final ``window`` of steps, tool use died (tool-call rate below
    ``min_tool_rate``) or the format broke down (format-error rate above ``max_format_error``)."""
    tool = window_mean(records, "tool_call_rate", last=window)
    fmt = window_mean(records, "format_error_rate", last=window)
    return (math.isfinite(tool) and tool < min_tool_rate) or (math.isfinite(fmt) and fmt > max_format_error)


def pm(m: float, s: float, digits: int = 3) -> str:
    """'m ± s' ('m' alone when s is NaN, '—' when m is)."""
    if not math.isfinite(m):
        return "—"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if math.isfinite(s) else f"{m:.{digits}f}"
