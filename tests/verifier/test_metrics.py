"""AUC and retrieval metrics against their definitions."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo.verifier.metrics import roc_auc, top1_accuracy

scores = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=15)


@settings(max_examples=60, deadline=None)
@given(scores, scores)
def test_auc_equals_the_pairwise_definition(pos, neg):
    brute = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))
    assert roc_auc(torch.tensor(pos), torch.tensor(neg)) == pytest.approx(brute)


def test_auc_extremes_and_errors():
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert roc_auc(torch.tensor([0.0]), torch.tensor([1.0, 2.0])) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(torch.tensor([1.0]), torch.tensor([]))


def test_top1_accuracy_counts_diagonal_wins():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.0, 0.0, 1.0]])
    assert top1_accuracy(sim) == pytest.approx(2 / 3)
