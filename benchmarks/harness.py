"""What every benchmark shares: the result record, side-by-side timing, and peak-memory probes.

The machines these run on are noisy (shared CPUs), so a figure is never one absolute time: each benchmark
times mapo and its reference *interleaved* (A, B, A, B, ...) in the same process and reports the ratio of
the medians. Absolute numbers are recorded too, for orientation only.
"""

from __future__ import annotations

import functools
import gc
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mapo.train.side import usable_cpus


@dataclass
class Figure:
    """One row of the results table: a measure of mapo next to the reference it is compared with."""

    benchmark: str
    """Which benchmark produced it (e.g. ``advantages``)."""
    measure: str
    """What was measured, in words (e.g. ``grpo, 1M tokens``)."""
    unit: str
    """Unit of ``mapo`` and ``reference`` (e.g. ``ms``, ``samples/s``, ``MiB``, ``%``)."""
    mapo: float | None
    """mapo's value (median over repeats)."""
    reference: float | None = None
    """The reference's value measured side by side in the same run; None when there is no reference."""
    reference_name: str = ""
    """What the reference is (e.g. ``verl compute_grpo_outcome_advantage``)."""
    speedup: float | None = None
    """How many times faster mapo is than the reference (>1: mapo faster), from the same-run medians."""
    note: str = ""
    """Anything a reader needs to interpret the row (sizes, parity error, caveats)."""
    extra: dict = field(default_factory=dict)
    """Raw numbers kept in the JSON only (all repeats, sizes)."""

    def to_json(self) -> dict:
        return asdict(self)


def speedup_from_times(mapo_s: float, reference_s: float) -> float:
    """Speed-up of mapo over the reference from two durations (seconds): reference / mapo."""
    return reference_s / mapo_s if mapo_s > 0 else float("inf")


def speedup_from_rates(mapo_rate: float, reference_rate: float) -> float:
    """Speed-up of mapo over the reference from two throughputs (items/s): mapo / reference."""
    return mapo_rate / reference_rate if reference_rate > 0 else float("inf")


def time_interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall-clock seconds of each candidate, run in turn (A, B, A, B, ...) so that load on a shared machine
    hits all of them alike.

    Returns ``{name: [seconds per repeat]}`` (warm-up runs excluded). Garbage is collected before every call
    so that one candidate's garbage is not charged to the next.
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def _read_status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak resident set size (Linux ``/proc/self/clear_refs``), so that the next
    ``peak_rss_mib()`` reports the peak of the phase that follows. Returns False where unsupported (then the
    peak is the process's lifetime peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB since the last ``reset_peak_rss()`` (or since start)."""
    hwm = _read_status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rss_mib() -> float:
    """Current resident memory of this process in MiB."""
    rss = _read_status_kib("VmRSS")
    return rss / 1024 if rss is not None else float("nan")


def cpu_count() -> int:
    """CPUs this process may use (respects affinity masks, unlike os.cpu_count): the count the demo uses."""
    return usable_cpus()


class Skip(Exception):
    """Raised by a benchmark that cannot run here (a missing optional dependency or layer); the suite
    records the reason and goes on."""


class PhaseTimer:
    """Charges wall time and peak memory to named phases by wrapping methods for the duration of a ``with``.

    ``timer.wrap(obj, "method", "phase")`` replaces ``obj.method`` (an instance or a class attribute) by a
    timed wrapper until the ``with`` block ends. ``exclusive`` phases reset the peak-RSS counter on entry, so
    each reports its own peak; nested phases (a phase inside another) must not be exclusive.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.peak_mib: dict[str, float] = {}
        """Peak RSS of the process during the phase (MiB); RSS rarely shrinks, so see ``growth_mib`` too."""
        self.growth_mib: dict[str, float] = {}
        """Largest rise of RSS above its value at the phase's entry (MiB): the memory the phase itself needed
        beyond what the process already held."""
        self._restore: list[tuple[object, str, object, bool]] = []

    def wrap(self, obj: object, attr: str, phase: str | Callable[..., str], exclusive: bool = True) -> None:
        """``phase``: a name, or a function of the call's ``(*args, **kwargs)`` that returns one (e.g. to
        tell a prefill forward from a decode forward by the input's shape)."""
        original = getattr(obj, attr)
        had_own = attr in getattr(obj, "__dict__", {})
        timer = self

        # wraps: callers that inspect the signature (transformers does, on model.forward) see the original's
        @functools.wraps(original)
        def timed(*args, **kwargs):
            name = phase(*args, **kwargs) if callable(phase) else phase
            if exclusive:
                reset_peak_rss()
                entry = rss_mib()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - start
                timer.calls[name] = timer.calls.get(name, 0) + 1
                if exclusive:
                    peak = peak_rss_mib()
                    timer.peak_mib[name] = max(timer.peak_mib.get(name, 0.0), peak)
                    timer.growth_mib[name] = max(timer.growth_mib.get(name, 0.0), peak - entry)

        setattr(obj, attr, timed)
        self._restore.append((obj, attr, original if had_own else None, had_own))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for obj, attr, original, had_own in reversed(self._restore):
            if had_own:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)
        self._restore.clear()
