"""Verifier: pairs scored per second, cold (every pair embedded) and cached (the (image hash, text) cache hit),
from the verifier engineer's ``benchmarks/verifier_bench.py``. The verifier's share of an RL step is in the
``step_breakdown`` benchmark (measured inside a real step).
"""

from __future__ import annotations

import importlib

from harness import Figure, Skip, speedup_from_rates

NAME = "verifier"


def figures_from(result: dict) -> list[Figure]:
    """Rows from ``verifier_bench.run()``'s dict: every ``*pairs_per_s`` number; the cached rate is compared
    with the cold one."""
    rates = {k: float(v) for k, v in result.items() if k.endswith("pairs_per_s") and isinstance(v, (int, float))}
    if not rates:
        raise ValueError(f"verifier_bench.run() returned no '*pairs_per_s' figure (keys: {sorted(result)})")
    cold = next((v for k, v in rates.items() if "cold" in k), None)
    setting = str(result.get("setting", ""))
    rows = []
    for key, rate in rates.items():
        cached = "cache" in key and "cold" not in key
        rows.append(Figure(
            benchmark=NAME, measure=key.removesuffix("_pairs_per_s").replace("_", " "), unit="pairs/s", mapo=rate,
            reference=cold if cached else None, reference_name="cold (no cache)" if cached else "",
            speedup=speedup_from_rates(rate, cold) if cached and cold else None,
            note=f"benchmarks/verifier_bench.py {setting}".strip(),
            extra={k: v for k, v in result.items() if isinstance(v, (int, float, str))}))
    return rows


def run(quick: bool = False) -> list[Figure]:
    try:
        module = importlib.import_module("verifier_bench")
    except ImportError as exc:
        raise Skip(f"benchmarks/verifier_bench.py is not importable ({exc})") from exc
    return figures_from(module.run(quick=quick))
