"""The advantage benchmark's synthetic batch follows the estimator contract (docs/interfaces.md)."""

import torch
from bench_advantages import make_batch


def test_batch_follows_the_estimator_contract():
    b = make_batch(n_prompts=5, group_size=4, length=40, max_turns=3, seed=1)
    B, L = b.response_mask.shape
    assert (B, L) == (20, 40) and b.turn_scores.shape == (20, 3)
    lengths = b.response_mask.sum(1).long()
    # The outcome sits on the last response token only.
    nonzero = b.token_level_rewards != 0
    assert nonzero.sum(1).le(1).all()
    rows = nonzero.any(1)
    assert torch.equal(nonzero[rows].float().argmax(1), lengths[rows] - 1)
    # token_turn: -1 outside the response; tool turns 0..T_i-1 then the answer turn T_i, non-decreasing.
    n_turns = b.turn_mask.sum(1)
    assert (b.token_turn[b.response_mask == 0] == -1).all()
    inside = torch.where(b.response_mask.bool(), b.token_turn, torch.zeros_like(b.token_turn))
    assert (inside.max(1).values <= n_turns).all()
    assert (inside.diff(dim=1)[b.response_mask[:, 1:].bool()] >= 0).all()
    # Scores only on existing turns; groups of G.
    assert (b.turn_scores[~b.turn_mask] == 0).all()
    assert len(set(b.index)) == 5 and list(b.index).count(b.index[0]) == 4
