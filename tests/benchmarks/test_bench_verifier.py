"""The verifier benchmark turns its measured rates into rows, the cached rate against the cold one."""

import pytest
from bench_verifier import figures_from


def test_cached_rate_is_compared_with_cold():
    rows = {f.measure: f for f in figures_from({"cold_pairs_per_s": 50.0, "cached_pairs_per_s": 5000.0,
                                                "setting": "N=64", "pairs": 64})}
    assert set(rows) == {"cold", "cached"}
    assert rows["cached"].speedup == pytest.approx(100.0) and rows["cached"].reference == 50.0
    assert rows["cold"].speedup is None and "N=64" in rows["cold"].note


def test_a_result_without_rates_is_an_error_naming_the_keys():
    with pytest.raises(ValueError, match="seconds"):
        figures_from({"seconds": 1.0})
