"""The benchmark suite's single entry point (``make bench``): runs every benchmark, prints a table, writes JSON.

    .venv/bin/python benchmarks/run.py                  # the full suite (< 15 min on a 2-core machine)
    .venv/bin/python benchmarks/run.py --quick          # tiny sizes: checks the plumbing in about a minute
    .venv/bin/python benchmarks/run.py --only advantages --only verifier

Each benchmark is a module ``benchmarks/bench_<name>.py`` with ``NAME`` and ``run(quick) -> list[Figure]``.
Every figure is a ratio of mapo to a reference timed side by side in the same run. A benchmark that cannot
run here (a missing optional dependency) is recorded as skipped with its reason; one that fails is recorded
with its error; neither stops the others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Figure, Skip, cpu_count

#: Set in the environment of a benchmark run in its own interpreter (see ``run_isolated``).
ISOLATED_ENV = "MAPO_BENCH_ISOLATED"

#: In the order they run; cheap and independent ones first.
BENCHMARKS = ["advantages", "verifier", "rollout", "hotpaths", "rl_step", "step_breakdown", "threads"]


@dataclass(frozen=True)
class Target:
    """A speed target: a figure's ``field`` (``speedup`` or ``mapo``) must be ``op`` (``>=`` / ``<=``) ``bound``."""

    benchmark: str
    measure: str
    unit: str
    field: str
    op: str
    bound: float
    what: str


#: Targets of the rollout engine and the RL step (issue #20); each is a ratio measured side by side in one run.
TARGETS = [
    Target("rollout", "batched engine vs naive loop", "traj/s", "speedup", ">=", 5.0,
           "batched engine vs one trajectory at a time (G=8, 3 turns)"),
    Target("rollout", "rollout wall time / its model forward time", "x", "mapo", "<=", 1.3,
           "rollout wall time / time inside the model's forward passes"),
    Target("rl_step", "single-turn GRPO step", "samples/s", "speedup", ">=", 1.8,
           "mapo RL step vs TRL GRPOTrainer, same single-turn work"),
]


def check_targets(results: dict, targets: list[Target] | None = None) -> list[dict]:
    """Each target with the measured value and ``met`` / ``not met`` / ``not measured`` (benchmark not run,
    skipped or failed)."""
    out = []
    for t in TARGETS if targets is None else targets:
        rec = results["benchmarks"].get(t.benchmark, {})
        figs = [f for f in rec.get("figures", []) if f["measure"] == t.measure and f["unit"] == t.unit]
        value = figs[0][t.field] if figs else None
        if value is None:
            status = "not measured"
        else:
            status = "met" if (value >= t.bound if t.op == ">=" else value <= t.bound) else "not met"
        out.append({**asdict(t), "value": value, "status": status})
    return out


def targets_text(checked: list[dict]) -> str:
    """One line per target: what, measured value, target, met / not met."""
    lines = []
    for c in checked:
        value = "-" if c["value"] is None else f"{c['value']:.2f}x"
        lines.append(f"  {c['status']:>12s}  {c['what']}: {value} (target {c['op']} {c['bound']:g}x)")
    return "\n".join(lines)


def default_threads() -> int:
    """All usable CPUs, unless other processes already keep them busy: then 1. Measured on a 2-core machine at
    load ~10, a tiny-model RL step took 8x longer with 2 intra-op threads than with 1 (OpenMP threads spin
    waiting for a core that another process holds); both sides of every ratio share the setting."""
    cpus = cpu_count()
    return cpus if os.getloadavg()[0] < 0.75 * cpus else 1


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "verl", "mapo"):
        try:
            out[pkg] = importlib.import_module(pkg).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is simply not listed
            out[pkg] = "absent"
    return out


def _machine() -> dict:
    import torch

    return {
        "cpus_usable": cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "versions": _versions(),
    }


def run_isolated(name: str, quick: bool) -> dict:
    """Run one benchmark in a fresh interpreter (same threads) and return its record: for benchmarks that
    measure memory, which the benchmarks before them in this process would already have grown."""
    import subprocess
    import tempfile

    import torch

    with tempfile.TemporaryDirectory(prefix="mapo-bench-") as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--only", name, "--out", str(out),
               "--threads", str(torch.get_num_threads()), *(["--quick"] if quick else [])]
        proc = subprocess.run(cmd, env={**os.environ, ISOLATED_ENV: "1"}, capture_output=True, text=True,
                              check=False)
        if not out.exists():
            raise RuntimeError(f"isolated run of {name} wrote no results (exit {proc.returncode}): "
                               f"{proc.stderr[-2000:]}")
        return json.loads(out.read_text())["benchmarks"][name]


def run_one(name: str, quick: bool) -> dict:
    """Run ``bench_<name>.run(quick)``; returns ``{"status", "seconds", "figures", "reason"}``. A module with
    ``ISOLATED = True`` runs in a fresh interpreter."""
    start = time.perf_counter()
    record: dict = {"status": "ok", "figures": [], "reason": ""}
    try:
        module = importlib.import_module(f"bench_{name}")
        if getattr(module, "ISOLATED", False) and not os.environ.get(ISOLATED_ENV):
            child = run_isolated(name, quick)
            child["seconds"] = time.perf_counter() - start
            return child
        figures: list[Figure] = module.run(quick=quick)
        record["figures"] = [f.to_json() for f in figures]
    except Skip as skip:
        record.update(status="skipped", reason=str(skip))
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
        record.update(status="error", reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    record["seconds"] = time.perf_counter() - start
    return record


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mapo benchmarks (speed-up > 1: mapo faster; same-run medians)")
    for col in ("benchmark", "measure", "mapo", "reference", "unit", "speed-up", "note"):
        table.add_column(col, overflow="fold")
    for name, rec in results["benchmarks"].items():
        if rec["status"] != "ok":
            table.add_row(name, f"[yellow]{rec['status']}[/]", "", "", "", "", rec["reason"][:200])
            continue
        for f in rec["figures"]:
            ref = f"{_fmt(f['reference'])} ({f['reference_name']})" if f["reference_name"] else "-"
            speed = f"{f['speedup']:.2f}x" if f["speedup"] is not None else "-"
            table.add_row(name, f["measure"], _fmt(f["mapo"]), ref, f["unit"], speed, f["note"])
    Console(width=200).print(table)


def markdown_table(results: dict) -> str:
    """The results as a Markdown table (for the README's performance section)."""
    lines = ["| benchmark | measure | mapo | reference | unit | speed-up | note |", "|---|---|---:|---|---|---:|---|"]
    for name, rec in results["benchmarks"].items():
        if rec["status"] != "ok":
            lines.append(f"| {name} | {rec['status']} | | | | | {rec['reason'][:160]} |")
            continue
        for f in rec["figures"]:
            ref = f"{_fmt(f['reference'])} ({f['reference_name']})" if f["reference_name"] else "-"
            speed = f"{f['speedup']:.2f}x" if f["speedup"] is not None else "-"
            cells = [name, f["measure"], _fmt(f["mapo"]), ref, f["unit"], speed, f["note"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    if results.get("targets"):
        lines.append("")
        lines.append("| target | measured | bound | status |")
        lines.append("|---|---:|---|---|")
        for c in results["targets"]:
            value = "-" if c["value"] is None else f"{c['value']:.2f}x"
            lines.append(f"| {c['what']} | {value} | {c['op']} {c['bound']:g}x | {c['status']} |")
    m = results["machine"]
    lines.append("")
    lines.append(f"{m['cpus_usable']} usable CPUs, torch threads {m['torch_threads']}, load average at start "
                 f"{m['load_average_at_start'][0]:.1f}; suite {results.get('seconds', 0):.0f} s; "
                 f"`{results['command']}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a plumbing check, not a measurement")
    parser.add_argument(
        "--only", action="append", metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results.json", help="where to write the JSON results"
    )
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads (default: all usable CPUs on an idle machine, 1 on a busy one)",
    )
    parser.add_argument(
        "--markdown", type=Path, default=None,
        help="render an existing results JSON (e.g. benchmarks/results.json) as a Markdown table and exit",
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(markdown_table(json.loads(args.markdown.read_text())))
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads or default_threads())
    names = args.only or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS and importlib.util.find_spec(f"bench_{n}") is None]
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: no such benchmark; choose from {', '.join(BENCHMARKS)}")
    results = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "machine": _machine(),
        "benchmarks": {},
    }
    suite_start = time.perf_counter()
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        rec = run_one(name, args.quick)
        results["benchmarks"][name] = rec
        print(f"[bench] {name}: {rec['status']} in {rec['seconds']:.1f} s {rec['reason'][:300]}", flush=True)
    results["seconds"] = time.perf_counter() - suite_start
    results["load_average_at_end"] = list(os.getloadavg())
    results["targets"] = [c for c in check_targets(results) if c["benchmark"] in names]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    if results["targets"]:
        print("targets (same-run ratios):")
        print(targets_text(results["targets"]))
    print(f"suite: {results['seconds']:.0f} s; results in {args.out}")
    return 1 if any(r["status"] == "error" for r in results["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
