"""Quality metrics of a verifier's scores: pure functions on tensors."""

from __future__ import annotations

import torch


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half (Mann-Whitney U).

    positive [P], negative [Q] scores; both non-empty."""
    if positive.numel() == 0 or negative.numel() == 0:
        raise ValueError(f"roc_auc needs both classes; got {positive.numel()} positives, {negative.numel()} "
                         "negatives")
    scores = torch.cat([positive, negative]).double()
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    # average ranks over ties
    unique, inverse = torch.unique(scores, return_inverse=True)
    rank_sum = torch.zeros(len(unique), dtype=torch.double).index_add_(0, inverse, ranks)
    count = torch.zeros(len(unique), dtype=torch.double).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = (rank_sum / count)[inverse]
    p, q = positive.numel(), negative.numel()
    u = ranks[:p].sum() - p * (p + 1) / 2
    return float(u / (p * q))


def top1_accuracy(similarity: torch.Tensor) -> float:
    """Share of rows whose largest entry is on the diagonal. similarity [N, N] (row i's match is column i)."""
    return float((similarity.argmax(dim=1) == torch.arange(similarity.shape[0])).float().mean())
