"""Hand-computed examples of the semantic aggregation and of mapo / mapo_turn on a small group."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mapo.core.advantages import get_advantage
from mapo.core.grouping import group_members
from mapo.core.semantic import (
    impute_no_tool,
    pad_turn_scores,
    semantic_returns,
    trajectory_semantic_score,
)

LAM = 0.5  # a discount whose powers are easy to check by hand


def test_pad_turn_scores_pads_ragged_rows_and_marks_existing_turns():
    scores, mask = pad_turn_scores([[0.1, 0.2], [], [0.3]])
    assert torch.allclose(scores, torch.tensor([[0.1, 0.2], [0.0, 0.0], [0.3, 0.0]]))
    assert mask.tolist() == [[1, 1], [0, 0], [1, 0]]
    assert pad_turn_scores([[], []])[0].shape == (2, 1)


@pytest.mark.parametrize(
    "aggregate, expected",
    [
        ("mean", [(0.8 + LAM * 0.2) / (1 + LAM), 0.5, 0.0]),
        ("sum", [0.8 + LAM * 0.2, 0.5, 0.0]),
        ("min", [0.2, 0.5, 0.0]),
    ],
)
def test_trajectory_semantic_score_aggregates(aggregate, expected):
    scores, mask = pad_turn_scores([[0.8, 0.2], [0.5], []])
    s, has_turn = trajectory_semantic_score(scores, mask, lam=LAM, aggregate=aggregate)
    assert s.tolist() == pytest.approx(expected)
    assert has_turn.tolist() == [True, True, False]


def test_no_tool_trajectories_get_the_group_minimum_or_a_fixed_score():
    s = torch.tensor([0.7, 0.2, 0.0, 0.0, 0.0], dtype=torch.float64)
    has_turn = torch.tensor([True, True, False, False, False])
    groups = group_members(np.array([0, 0, 0, 1, 1]), 5)
    assert impute_no_tool(s, has_turn, groups).tolist() == pytest.approx([0.7, 0.2, 0.2, 0.0, 0.0])
    assert impute_no_tool(s, has_turn, groups, -1.0).tolist() == pytest.approx([0.7, 0.2, -1, -1, -1])
    with pytest.raises(ValueError, match="no_tool_score"):
        impute_no_tool(s, has_turn, groups, "median")


@pytest.mark.parametrize(
    "aggregate, expected_row0",
    [
        ("sum", [0.8 + LAM * 0.2 + LAM**2 * 0.4, 0.2 + LAM * 0.4, 0.4]),
        ("mean", [(0.8 + LAM * 0.2 + LAM**2 * 0.4) / (1 + LAM + LAM**2), (0.2 + LAM * 0.4) / (1 + LAM), 0.4]),
        ("min", [0.2, 0.2, 0.4]),
    ],
)
def test_semantic_returns_from_each_call_onwards(aggregate, expected_row0):
    scores, mask = pad_turn_scores([[0.8, 0.2, 0.4], [0.5]])
    g = semantic_returns(scores, mask, lam=LAM, aggregate=aggregate)
    assert g[0].tolist() == pytest.approx(expected_row0)
    assert g[1].tolist() == pytest.approx([0.5, 0.0, 0.0])
    s, _ = trajectory_semantic_score(scores, mask, lam=LAM, aggregate=aggregate)
    assert g[:, 0].tolist() == pytest.approx(s.tolist())  # G_i0 = S_i


def test_turn_mask_must_be_a_prefix():
    with pytest.raises(ValueError, match="existing turns must come first"):
        trajectory_semantic_score(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))


def _norm(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / (x.std(ddof=1) + 1e-6)


def test_mapo_by_hand_on_one_group():
    """Four rollouts of one prompt: rewards 1, 0, 1, 0; calls [0.8, 0.2], [0.5], none, [0.1]."""
    rewards = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    scores, turn_mask = pad_turn_scores([[0.8, 0.2], [0.5], [], [0.1]])
    index = np.array(["q", "q", "q", "q"])
    adv, returns = get_advantage("mapo")(
        rewards, mask, index, turn_scores=scores, turn_mask=turn_mask, beta=0.4, lam=LAM
    )
    s0 = (0.8 + LAM * 0.2) / (1 + LAM)
    semantic = [s0, 0.5, 0.1, 0.1]  # the no-call rollout gets the group's minimum, 0.1
    expected = _norm([1, 0, 1, 0]) + 0.4 * _norm(semantic)
    assert adv[:, 1].tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert adv[2, 0] == 0  # masked token
    assert torch.equal(adv, returns)


def test_mapo_turn_by_hand_on_one_group():
    """Token layout per row: [call 0, call 1 or answer, answer]; -1 marks a tool observation."""
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    token_turn = torch.tensor([[0, 1, 2], [0, -1, 1], [0, 0, 0]])
    scores, turn_mask = pad_turn_scores([[0.8, 0.2], [0.5], []])
    index = np.array([7, 7, 7])
    adv, _ = get_advantage("mapo_turn")(
        rewards,
        mask,
        index,
        turn_scores=scores,
        turn_mask=turn_mask,
        token_turn=token_turn,
        beta=0.4,
        lam=LAM,
    )
    outcome = _norm([1, 0, 1])
    g = [(0.8 + LAM * 0.2) / (1 + LAM), 0.2, 0.5]  # pool: (0, 0), (0, 1), (1, 0)
    pooled = _norm(g)
    traj = _norm([g[0], 0.5, 0.5])  # S_i with the no-call rollout imputed at the group min 0.5
    expected = torch.tensor(
        [
            [outcome[0] + 0.4 * pooled[0], outcome[0] + 0.4 * pooled[1], outcome[0] + 0.4 * traj[0]],
            [outcome[1] + 0.4 * pooled[2], 0.0, outcome[1] + 0.4 * traj[1]],
            [outcome[2] + 0.4 * traj[2]] * 3,
        ]
    )
    assert torch.allclose(adv, expected.float(), atol=1e-5)
    outcome_only, _ = get_advantage("mapo_turn")(
        rewards,
        mask,
        index,
        turn_scores=scores,
        turn_mask=turn_mask,
        token_turn=token_turn,
        beta=0.4,
        lam=LAM,
        answer_credit="outcome",
    )
    assert float(outcome_only[0, 2]) == pytest.approx(outcome[0], abs=1e-5)
    assert float(outcome_only[0, 0]) == pytest.approx(float(expected[0, 0]), abs=1e-5)


def test_mapo_needs_turn_scores_and_says_how_to_build_them():
    with pytest.raises(ValueError, match="pad_turn_scores"):
        get_advantage("mapo")(torch.zeros(2, 3), torch.ones(2, 3), np.array([0, 0]))
    with pytest.raises(ValueError, match="token_turn"):
        scores, turn_mask = pad_turn_scores([[0.1], [0.2]])
        get_advantage("mapo_turn")(
            torch.zeros(2, 3), torch.ones(2, 3), np.array([0, 0]), turn_scores=scores, turn_mask=turn_mask
        )


def test_token_turn_beyond_the_answer_index_is_rejected():
    scores, turn_mask = pad_turn_scores([[0.1], [0.2]])
    with pytest.raises(ValueError, match=r"\[-1, T_i\]"):
        get_advantage("mapo_turn")(
            torch.zeros(2, 2),
            torch.ones(2, 2),
            np.array([0, 0]),
            turn_scores=scores,
            turn_mask=turn_mask,
            token_turn=torch.tensor([[0, 2], [0, 1]]),
        )


def test_index_must_match_the_batch():
    with pytest.raises(ValueError, match="one group id per trajectory"):
        get_advantage("grpo")(torch.zeros(3, 2), torch.ones(3, 2), np.array([0, 0]))


def test_unknown_estimator_lists_the_known_ones():
    with pytest.raises(KeyError, match="mapo_turn"):
        get_advantage("ppo_gae_typo")


def test_one_call_site_serves_all_with_typed_params():
    from mapo.core.params import MAPOParams

    rewards, mask = torch.tensor([[1.0], [0.0]]), torch.ones(2, 1)
    scores, turn_mask = pad_turn_scores([[0.3], [0.1]])
    turns = {"turn_scores": scores, "turn_mask": turn_mask, "token_turn": torch.zeros(2, 1, dtype=torch.long)}
    params = MAPOParams(no_tool_score=-1.0)
    for name in ["grpo", "rloo", "mapo", "mapo_turn"]:
        fn = get_advantage(name)
        adv, _ = fn(rewards, mask, np.array([0, 0]), **turns, **params.estimator_kwargs(fn))
        assert adv[0, 0] > 0 > adv[1, 0]
    assert math.isclose(float(get_advantage("rloo")(rewards, mask, np.array([0, 0]))[0][0, 0]), 1.0)


@pytest.mark.parametrize("name, typo", [("mapo", "no_tool_scor"), ("mapo_turn", "betta"), ("grpo", "beta"),
                                        ("rloo", "norm_adv_by_std_in_grpo")])
def test_an_unknown_param_is_an_error_naming_it(name, typo):
    rewards, mask = torch.tensor([[1.0], [0.0]]), torch.ones(2, 1)
    scores, turn_mask = pad_turn_scores([[0.3], [0.1]])
    turns = {"turn_scores": scores, "turn_mask": turn_mask, "token_turn": torch.zeros(2, 1, dtype=torch.long)}
    with pytest.raises(TypeError, match=typo):
        get_advantage(name)(rewards, mask, np.array([0, 0]), **turns, **{typo: -1.0})
