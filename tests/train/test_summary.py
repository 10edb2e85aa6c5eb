import math

import pytest

from mapo.train.stamps import built_seconds, is_done, mark_done
from mapo.train.summary import collapsed, mean_std, pm, window_mean


def test_mean_std():
    m, s = mean_std([1.0, 2.0, 3.0, None, float("nan")])
    assert m == 2.0 and s == pytest.approx(1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))
    assert pm(0.5, 0.25, 2) == "0.50 ± 0.25" and pm(float("nan"), 0) == "—"


def test_collapse_detection_looks_at_the_end():
    healthy = [{"tool_call_rate": 0.9, "format_error_rate": 0.0}] * 10
    dying = healthy[:8] + [{"tool_call_rate": 0.0, "format_error_rate": 0.0}] * 2
    broken = healthy[:8] + [{"tool_call_rate": 0.9, "format_error_rate": 0.9}] * 2
    recovered = [{"tool_call_rate": 0.0, "format_error_rate": 0.0}] * 2 + healthy[:8]
    assert not collapsed(healthy) and collapsed(dying) and collapsed(broken) and not collapsed(recovered)


def test_window_mean():
    recs = [{"x": float(i)} for i in range(10)]
    assert window_mean(recs, "x", last=0.2) == 8.5
    assert window_mean(recs, "x", first=0.1) == 0.0
    assert window_mean(recs, "x") == 4.5


def test_stamps(tmp_path):
    assert not is_done(tmp_path, {"a": 1})
    mark_done(tmp_path, {"a": 1})
    assert is_done(tmp_path, {"a": 1}) and not is_done(tmp_path, {"a": 2})


def test_mean_ci95_uses_student_t_over_seeds():
    import math

    from mapo.train.summary import mean_ci95

    m, half = mean_ci95([0.4, 0.5, 0.6])
    assert m == 0.5 and abs(half - 4.303 * 0.1 / math.sqrt(3)) < 1e-9
    assert math.isnan(mean_ci95([0.5])[1])
    assert abs(mean_ci95([0.0, 1.0] * 20)[1] - 2.023 * 0.5064 / math.sqrt(40)) < 0.01


def test_a_stamp_keeps_how_long_the_build_took_outside_its_fingerprint(tmp_path):
    mark_done(tmp_path / "a", {"x": 1}, seconds=12.34)
    mark_done(tmp_path / "b", {"x": 1})
    assert built_seconds(tmp_path / "a") == 12.3 and built_seconds(tmp_path / "b") is None
    assert built_seconds(tmp_path / "missing") is None
    assert is_done(tmp_path / "a", {"x": 1}) and is_done(tmp_path / "b", {"x": 1})
