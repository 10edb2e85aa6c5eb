"""Properties of every ``semantic_norm`` form of MAPO's semantic term (mapo.core.semantic_norm)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo.core.advantages import get_advantage
from mapo.core.grouping import group_members
from mapo.core.semantic import pad_turn_scores
from mapo.core.semantic_norm import SEMANTIC_NORMS, normalize_semantic

SETTINGS = settings(max_examples=50, deadline=None)
SEPARATE = [n for n in SEMANTIC_NORMS if n != "joint"]
REWARDS = st.sampled_from([0.0, 0.1, 0.9, 1.0])


@st.composite
def batches(draw, min_group=1, max_group=6, reward_values=REWARDS):
    """Groups of one-token responses with outcome rewards and 0-3 verifier scores per trajectory."""
    sizes = draw(st.lists(st.integers(min_group, max_group), min_size=1, max_size=4))
    index, rewards, scores = [], [], []
    for g, size in enumerate(sizes):
        for _ in range(size):
            index.append(g)
            rewards.append([draw(reward_values)])
            n = draw(st.integers(0, 3))
            scores.append(draw(st.lists(st.floats(-1, 1, width=32), min_size=n, max_size=n)))
    turn_scores, turn_mask = pad_turn_scores(scores, dtype=torch.float64)
    token_turn = torch.tensor([[len(s)] for s in scores])
    return (torch.tensor(rewards, dtype=torch.float32), torch.ones(len(index), 1), np.array(index),
            {"turn_scores": turn_scores, "turn_mask": turn_mask, "token_turn": token_turn})


def _run(name, batch, **params):
    rewards, mask, index, kw = batch
    return get_advantage(name)(rewards, mask, index, **kw, **params)[0]


@SETTINGS
@given(batches(), st.sampled_from(SEMANTIC_NORMS))
def test_beta_zero_is_grpo_bit_for_bit(batch, norm):
    assert torch.equal(_run("mapo", batch, beta=0.0, semantic_norm=norm), _run("grpo", batch))


@SETTINGS
@given(batches(), st.sampled_from(SEPARATE))
def test_mapo_turn_beta_zero_is_grpo_bit_for_bit(batch, norm):
    assert torch.equal(_run("mapo_turn", batch, beta=0.0, semantic_norm=norm), _run("grpo", batch))


@SETTINGS
@given(batches(min_group=2), st.sampled_from(SEMANTIC_NORMS), st.floats(0.05, 2.0))
def test_zero_mean_per_group(batch, norm, beta):
    adv = _run("mapo", batch, beta=beta, semantic_norm=norm)[:, 0].double()
    for members in group_members(batch[2], len(batch[2])):
        assert abs(float(adv[members].mean())) < 1e-4


@SETTINGS
@given(batches(min_group=1, max_group=1), st.sampled_from(SEMANTIC_NORMS))
def test_finite_on_singletons(batch, norm):
    for name in ("mapo", "mapo_turn") if norm != "joint" else ("mapo",):
        assert torch.isfinite(_run(name, batch, beta=0.4, semantic_norm=norm)).all()


@SETTINGS
@given(batches(min_group=2, reward_values=st.just(1.0)), st.sampled_from(SEMANTIC_NORMS))
def test_finite_on_constant_outcome_groups(batch, norm):
    adv = _run("mapo", batch, beta=0.4, semantic_norm=norm)
    assert torch.isfinite(adv).all()
    if norm == "outcome_varies":  # where GRPO has no gradient, this form adds none either
        assert (adv == 0).all()


def test_each_form_on_a_worked_group():
    # one group, equal outcomes, semantic scores 0.30 and 0.32 (a wording difference)
    s = torch.tensor([0.30, 0.32], dtype=torch.float64)
    r = torch.tensor([1.0, 1.0])
    groups = group_members([0, 0], 2)
    std = normalize_semantic(s, r, groups, semantic_norm="std")
    assert torch.allclose(std, torch.tensor([-0.7071, 0.7071], dtype=torch.float64), atol=1e-3)  # +-1/sqrt(2)
    centred = normalize_semantic(s, r, groups, semantic_norm="center")
    assert torch.allclose(centred, torch.tensor([-0.01, 0.01], dtype=torch.float64))
    floored = normalize_semantic(s, r, groups, semantic_norm="std_floor", semantic_std_floor=0.1)
    assert torch.allclose(floored, torch.tensor([-0.1, 0.1], dtype=torch.float64), atol=1e-5)
    assert (normalize_semantic(s, r, groups, semantic_norm="outcome_varies") == 0).all()
    varied = normalize_semantic(s, torch.tensor([1.0, 0.0]), groups, semantic_norm="outcome_varies")
    assert torch.equal(varied, std)


def test_joint_ranks_by_the_combined_reward():
    # R = (1, 1, 0), S = (0.9, 0.1, 0.5): joint with beta 1 orders 1.9 > 1.1 > 0.5
    rewards = torch.tensor([[1.0], [1.0], [0.0]])
    turn_scores, turn_mask = pad_turn_scores([[0.9], [0.1], [0.5]], dtype=torch.float64)
    adv, _ = get_advantage("mapo")(rewards, torch.ones(3, 1), np.zeros(3, dtype=int), turn_scores=turn_scores,
                                   turn_mask=turn_mask, beta=1.0, semantic_norm="joint")
    assert adv[0, 0] > adv[1, 0] > adv[2, 0]


def test_unknown_form_and_turn_level_joint_are_errors():
    batch = (torch.ones(2, 1), torch.ones(2, 1), np.zeros(2, dtype=int),
             dict(zip(("turn_scores", "turn_mask"), pad_turn_scores([[0.1], [0.2]]))) | {
                 "token_turn": torch.ones(2, 1, dtype=torch.long)})
    with pytest.raises(ValueError, match="semantic_norm"):
        _run("mapo", batch, semantic_norm="zscore")
    with pytest.raises(ValueError, match="joint"):
        _run("mapo_turn", batch, semantic_norm="joint")
