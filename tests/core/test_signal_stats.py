"""The theory's quantities (mapo.core.signal_stats) on hand-built batches whose answers are worked out by hand."""

from __future__ import annotations

import math

import torch

from mapo.core.grouping import group_members
from mapo.core.signal_stats import group_signal_stats


def _stats(outcome, semantic, index):
    return group_signal_stats(torch.tensor(outcome, dtype=torch.float64), torch.tensor(semantic, dtype=torch.float64),
                              group_members(index, len(index)))


def test_two_groups_worked_by_hand():
    # group a: R = (1, 0), S = (0.8, 0.2)  -> std_R = 0.7071, std_S = 0.4243, deviations (.5,-.5), (.3,-.3)
    # group b: R = (0, 0), S = (0.5, 0.1)  -> constant outcome, varied semantic; std_S = 0.2828
    s = _stats([1, 0, 0, 0], [0.8, 0.2, 0.5, 0.1], [0, 0, 1, 1])
    assert math.isclose(s["outcome_std"], (math.sqrt(0.5) + 0) / 2)
    assert math.isclose(s["semantic_std"], (math.sqrt(0.18) + math.sqrt(0.08)) / 2)
    assert math.isclose(s["std_ratio"], s["semantic_std"] / s["outcome_std"])
    # pooled within-group correlation: sum dR dS = .15 + .15 = .3; sum dR^2 = .5; sum dS^2 = .18 + .08
    assert math.isclose(s["within_corr"], 0.3 / math.sqrt(0.5 * 0.26))
    assert s["const_outcome_share"] == 0.5
    assert s["semantic_only_share"] == 0.5


def test_anticorrelated_semantic_gives_negative_correlation():
    s = _stats([1, 0, 1, 0], [0.1, 0.9, 0.2, 0.6], [0, 0, 1, 1])
    assert s["within_corr"] < 0
    assert s["const_outcome_share"] == 0.0 and s["semantic_only_share"] == 0.0


def test_correlation_is_one_only_for_one_common_slope():
    assert math.isclose(_stats([1, 0, 1, 0], [0.6, 0.2, 0.6, 0.2], [0, 0, 1, 1])["within_corr"], 1.0)
    # aligned within each group but with different slopes: pooled, the correlation is below 1
    assert _stats([1, 0, 0, 1, 0], [0.9, 0.1, 0.1, 0.7, 0.3], [0, 0, 0, 1, 1])["within_corr"] < 0.99


def test_undefined_quantities_are_nan_not_errors():
    every_outcome_constant = _stats([1, 1, 0, 0], [0.3, 0.3, 0.2, 0.2], [0, 0, 1, 1])
    assert math.isnan(every_outcome_constant["std_ratio"]) and math.isnan(every_outcome_constant["within_corr"])
    assert every_outcome_constant["const_outcome_share"] == 1.0
    assert every_outcome_constant["semantic_only_share"] == 0.0
    singletons = _stats([1, 0], [0.3, 0.2], [0, 1])
    assert all(math.isnan(v) for v in singletons.values())
