"""The shared timing and memory helpers every benchmark relies on."""

import harness
import numpy as np


def test_time_interleaved_alternates_candidates_and_drops_warmup():
    calls: list[str] = []
    times = harness.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                     repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # 1 warm-up round + 3 timed rounds, always interleaved
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_speedup_orientation():
    # mapo twice as fast: half the time, or double the rate.
    assert harness.speedup_from_times(mapo_s=1.0, reference_s=2.0) == 2.0
    assert harness.speedup_from_rates(mapo_rate=10.0, reference_rate=5.0) == 2.0
    assert harness.speedup_from_times(mapo_s=3.0, reference_s=1.0) < 1


def test_peak_rss_sees_a_large_allocation_after_reset():
    harness.reset_peak_rss()
    before = harness.peak_rss_mib()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    after = harness.peak_rss_mib()
    del block
    assert after - before > 48


def test_figure_round_trips_to_json():
    fig = harness.Figure("x", "m", "ms", 1.0, 2.0, "ref", 2.0, "n", {"k": [1]})
    assert fig.to_json()["speedup"] == 2.0 and fig.to_json()["extra"] == {"k": [1]}


class _Worker:
    def work(self, n):
        return sum(range(n))


def test_phase_timer_charges_calls_and_restores_methods():
    w = _Worker()
    with harness.PhaseTimer() as timer:
        timer.wrap(w, "work", "instance")
        timer.wrap(_Worker, "work", "class", exclusive=False)
        assert w.work(10) == 45  # the instance wrapper holds the method bound before the class was wrapped
        _Worker().work(3)
    assert timer.calls == {"instance": 1, "class": 1}
    assert timer.seconds["instance"] >= 0 and "class" not in timer.peak_mib and timer.peak_mib["instance"] > 0
    assert "work" not in w.__dict__ and _Worker.__dict__["work"] is _Worker.__dict__["work"]
    assert _Worker.work.__name__ == "work" and w.work(4) == 6  # originals are back


def test_phase_timer_names_phases_per_call():
    w = _Worker()
    with harness.PhaseTimer() as timer:
        timer.wrap(w, "work", lambda n: "big" if n > 5 else "small", exclusive=False)
        w.work(10), w.work(1), w.work(2)
    assert timer.calls == {"big": 1, "small": 2}
