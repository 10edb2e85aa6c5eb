"""The shared timing and memory helpers every benchmark relies on."""

import numpy as np

import harness


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
