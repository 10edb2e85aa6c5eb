"""Property tests of the advantage estimators: what must hold for every batch, groups and turn layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mapo.core.advantages import get_advantage, list_advantages
from mapo.core.semantic import pad_turn_scores, trajectory_semantic_score

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)
ALL_ESTIMATORS = ["grpo", "rloo", "mapo", "mapo_turn"]


@dataclass
class Batch:
    """A random batch in the estimator contract's layout."""

    rewards: torch.Tensor  # [B, L], the outcome on the last valid token
    mask: torch.Tensor  # [B, L]
    index: np.ndarray  # [B] group ids (strings, to exercise non-integer ids)
    scores: list[list[float]]  # ragged per-call verifier scores
    token_turn: torch.Tensor  # [B, L]

    def kwargs(self) -> dict:
        turn_scores, turn_mask = pad_turn_scores(self.scores, dtype=torch.float64)
        return {"turn_scores": turn_scores, "turn_mask": turn_mask, "token_turn": self.token_turn}

    def run(self, name: str, **params) -> torch.Tensor:
        adv, _ = get_advantage(name)(self.rewards, self.mask, self.index, **self.kwargs(), **params)
        return adv

    def members(self) -> list[np.ndarray]:
        return [np.flatnonzero(self.index == g) for g in dict.fromkeys(self.index.tolist())]


def _turn_layout(n_calls: int, length: int, draw) -> list[int]:
    """Tool-call index per token: calls 0..n-1 then the answer (n), in order, each at least one token."""
    cuts = sorted(draw(st.lists(st.integers(0, length), min_size=n_calls, max_size=n_calls)))
    turn = []
    for pos in range(length):
        turn.append(sum(pos >= c for c in cuts))
    return turn


@st.composite
def batches(
    draw, min_group=1, max_group=5, max_calls=3, reward_values=None, calls=None, full_mask=False
) -> Batch:
    group_sizes = draw(st.lists(st.integers(min_group, max_group), min_size=1, max_size=4))
    length = draw(st.integers(1, 6))
    index, rewards, mask, scores, token_turn = [], [], [], [], []
    for g, size in enumerate(group_sizes):
        for _ in range(size):
            index.append(f"prompt-{g}")
            row_mask = (
                [1] * length
                if full_mask
                else draw(st.lists(st.integers(0, 1), min_size=length, max_size=length))
            )
            mask.append(row_mask)
            value = draw(reward_values if reward_values is not None else st.floats(-3, 3, width=32))
            row = [0.0] * length
            row[length - 1] = value
            rewards.append(row)
            n_calls = draw(calls if calls is not None else st.integers(0, max_calls))
            scores.append(draw(st.lists(st.floats(-1, 1, width=32), min_size=n_calls, max_size=n_calls)))
            turns = _turn_layout(n_calls, length, draw)
            token_turn.append([t if m else -1 for t, m in zip(turns, row_mask)])
    return Batch(
        rewards=torch.tensor(rewards, dtype=torch.float32),
        mask=torch.tensor(mask, dtype=torch.float32),
        index=np.array(index, dtype=object),
        scores=scores,
        token_turn=torch.tensor(token_turn, dtype=torch.long),
    )


def seq_values(adv: torch.Tensor, batch: Batch) -> np.ndarray:
    """One advantage per trajectory (sequence-level estimators give every valid token the same value)."""
    rows = []
    for i in range(adv.shape[0]):
        valid = adv[i][batch.mask[i].bool()]
        if len(valid):
            assert torch.allclose(valid, valid[0].expand_as(valid)), (
                "sequence-level advantage varies in a row"
            )
        rows.append(float(valid[0]) if len(valid) else float("nan"))
    return np.array(rows)


def test_registry_lists_the_four_estimators():
    assert set(ALL_ESTIMATORS) <= set(list_advantages())


@PROPERTY_SETTINGS
@given(batches(), st.sampled_from(ALL_ESTIMATORS))
def test_zero_outside_the_response_mask_and_never_nan(batch, name):
    adv = batch.run(name)
    assert adv.shape == batch.rewards.shape
    assert torch.isfinite(adv).all()
    assert (adv[batch.mask == 0] == 0).all()


@PROPERTY_SETTINGS
@given(batches(min_group=2, full_mask=True), st.sampled_from(["grpo", "rloo", "mapo"]))
def test_sequence_advantages_have_zero_mean_per_group(batch, name):
    values = seq_values(batch.run(name), batch)
    for members in batch.members():
        assert abs(values[members].mean()) < 1e-4


def one_token_per_turn(batch: Batch) -> Batch:
    """Re-lay every response as one token per tool call, then the answer: token l belongs to call l."""
    width = max(len(row) for row in batch.scores) + 1
    n_calls = torch.tensor([len(row) for row in batch.scores]).unsqueeze(1)
    rewards = torch.zeros(len(batch.scores), width)
    rewards[:, -1] = batch.rewards.sum(-1)
    token_turn = torch.minimum(torch.arange(width).unsqueeze(0), n_calls)
    return Batch(rewards, torch.ones(len(batch.scores), width), batch.index, batch.scores, token_turn)


@PROPERTY_SETTINGS
@given(batches(min_group=2, max_calls=3))
def test_mapo_turn_semantic_credits_have_zero_mean_over_each_groups_tool_calls(batch):
    """Over the (trajectory, call) pool of a group the pooled credit P_it sums to zero."""
    batch = one_token_per_turn(batch)
    credit = (batch.run("mapo_turn", beta=1.0) - batch.run("grpo")).double()
    for members in batch.members():
        pooled = [float(credit[i, t]) for i in members for t in range(len(batch.scores[i]))]
        if len(pooled) > 1:
            assert abs(np.mean(pooled)) < 1e-5


@PROPERTY_SETTINGS
@given(batches(min_group=2), st.floats(-5, 5), st.floats(0.1, 10))
def test_grpo_is_invariant_to_shift_and_positive_scale_of_rewards(batch, shift, scale):
    for members in batch.members():
        assume(batch.rewards[members].sum(-1).std() > 0.05)
    base = batch.run("grpo")
    moved = Batch(batch.rewards.clone(), batch.mask, batch.index, batch.scores, batch.token_turn)
    moved.rewards[:, -1] = moved.rewards[:, -1] * scale + shift
    assert torch.allclose(moved.run("grpo"), base, atol=2e-3, rtol=1e-3)


@PROPERTY_SETTINGS
@given(batches(min_group=2, calls=st.integers(1, 3)), st.floats(-1, 1), st.floats(0.1, 10))
def test_mapo_is_invariant_to_shift_and_scale_of_semantic_scores(batch, shift, scale):
    """Discounted-mean S moves by the same affine map as every s_it, and norm_G removes it."""
    semantic = trajectory_semantic_score(*pad_turn_scores(batch.scores, dtype=torch.float64))[0]
    for members in batch.members():
        spread = float(semantic[members].std())
        assume(spread == 0 or spread > 0.05)  # near-ties: epsilon / scale decides their sign
    base = batch.run("mapo", beta=1.0).double()
    moved = Batch(
        batch.rewards,
        batch.mask,
        batch.index,
        [[s * scale + shift for s in row] for row in batch.scores],
        batch.token_turn,
    )
    assert torch.allclose(moved.run("mapo", beta=1.0).double(), base, atol=2e-3, rtol=1e-3)


@PROPERTY_SETTINGS
@given(batches(min_group=2, reward_values=st.just(0.7)), st.sampled_from(ALL_ESTIMATORS))
def test_groups_with_equal_rewards_and_equal_scores_give_zeros(batch, name):
    batch.scores = [[0.3] * len(row) for row in batch.scores]
    adv = batch.run(name)
    assert torch.isfinite(adv).all()
    assert (adv == 0).all()


@PROPERTY_SETTINGS
@given(batches(min_group=1, max_group=1), st.sampled_from(ALL_ESTIMATORS))
def test_single_member_groups_give_zeros_when_asked(batch, name):
    adv = batch.run(name, singleton="zero")
    assert torch.isfinite(adv).all()
    assert (adv == 0).all()


@PROPERTY_SETTINGS
@given(batches(min_group=1, max_group=1))
def test_single_member_groups_follow_verl_by_default(batch):
    """verl: mean 0, std 1 -> the raw reward / (1 + eps); MAPO adds no semantic term without a group."""
    expected = (batch.rewards.sum(-1, keepdim=True) / (1 + 1e-6)) * batch.mask
    assert torch.allclose(batch.run("grpo"), expected)
    assert torch.equal(batch.run("mapo"), batch.run("grpo"))


@PROPERTY_SETTINGS
@given(batches())
def test_mapo_with_beta_zero_is_grpo_exactly(batch):
    assert torch.equal(batch.run("mapo", beta=0.0), batch.run("grpo"))
    assert torch.equal(batch.run("mapo_turn", beta=0.0), batch.run("grpo"))
    assert torch.equal(
        batch.run("mapo", beta=0.0, norm_by_std=False), batch.run("grpo", norm_by_std=False)
    )


@PROPERTY_SETTINGS
@given(batches(calls=st.just(1)), st.floats(0.0, 2.0), st.floats(0.5, 1.0))
def test_mapo_turn_on_one_call_trajectories_equals_mapo(batch, beta, lam):
    turn = batch.run("mapo_turn", beta=beta, lam=lam)
    traj = batch.run("mapo", beta=beta, lam=lam)
    assert torch.allclose(turn, traj, atol=1e-6)


@PROPERTY_SETTINGS
@given(batches(min_group=2), st.sampled_from(["mapo", "mapo_turn"]))
def test_a_group_where_nobody_zoomed_gets_outcome_only(batch, name):
    batch.scores = [[] for _ in batch.scores]
    batch.token_turn = torch.where(batch.token_turn >= 0, 0, -1)
    assert torch.equal(batch.run(name, beta=0.4), batch.run("grpo"))


@PROPERTY_SETTINGS
@given(batches(min_group=2, max_calls=3, full_mask=True))
def test_higher_semantic_score_never_lowers_mapo_advantage(batch):
    """Monotonicity: raising one trajectory's call scores cannot lower its own advantage (beta > 0)."""
    i = int(np.flatnonzero([len(s) > 0 for s in batch.scores])[0]) if any(batch.scores) else None
    assume(i is not None)
    before = seq_values(batch.run("mapo", beta=1.0), batch)[i]
    batch.scores[i] = [min(1.0, s + 0.5) for s in batch.scores[i]]
    after = seq_values(batch.run("mapo", beta=1.0), batch)[i]
    assert after >= before - 1e-5
