"""Hand-computed cases for the PPO surrogate, the aggregation modes, the KL estimators and the entropy."""

from __future__ import annotations

import math

import pytest
import torch

from mapo.core.losses import agg_loss, entropy_from_logits, entropy_loss, kl_loss, kl_penalty, policy_loss


def _logp(ratios):
    return torch.log(torch.tensor([ratios], dtype=torch.float64))


def test_clipping_on_both_sides_with_clip_higher():
    """clip range [1 - 0.2, 1 + 0.28]; per-token loss max(-A r, -A clip(r))."""
    ratios = [1.5, 0.5, 0.5, 1.5, 1.1]
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 2.0]], dtype=torch.float64)
    logprobs = _logp(ratios).requires_grad_(True)
    loss, metrics = policy_loss(
        torch.zeros(1, 5, dtype=torch.float64),
        logprobs,
        advantages,
        torch.ones(1, 5),
        clip_low=0.2,
        clip_high=0.28,
    )
    # A=+1, r=1.5 -> clipped at 1.28; A=+1, r=0.5 -> unclipped -0.5; A=-1, r=0.5 -> clipped at 0.8;
    # A=-1, r=1.5 -> unclipped 1.5; A=2, r=1.1 -> inside the range, -2.2.
    per_token = [-1.28, -0.5, 0.8, 1.5, -2.2]
    assert loss.item() == pytest.approx(sum(per_token) / 5)
    assert metrics["clip_frac"] == pytest.approx(2 / 5)
    assert metrics["clip_frac_high"] == pytest.approx(1 / 5)
    assert metrics["clip_frac_low"] == pytest.approx(1 / 5)
    assert metrics["approx_kl"] == pytest.approx(-sum(math.log(r) for r in ratios) / 5)
    loss.backward()
    # Clipped tokens pass no gradient; the others get -A r / 5 (d r / d logp = r).
    expected_grad = [0.0, -1.0 * 0.5 / 5, 0.0, 1.0 * 1.5 / 5, -2.0 * 1.1 / 5]
    assert logprobs.grad[0].tolist() == pytest.approx(expected_grad)


def test_symmetric_clip_differs_from_clip_higher():
    args = (torch.zeros(1, 1), torch.log(torch.tensor([[1.25]])), torch.ones(1, 1), torch.ones(1, 1))
    assert policy_loss(*args, clip_low=0.2, clip_high=0.2)[0].item() == pytest.approx(-1.2)
    assert policy_loss(*args, clip_low=0.2, clip_high=0.28)[0].item() == pytest.approx(-1.25)


def test_dual_clip_bounds_negative_advantage_tokens_with_huge_ratios():
    old = torch.zeros(1, 2)
    logprobs = torch.log(torch.tensor([[5.0, 2.0]]))
    advantages = torch.tensor([[-1.0, -1.0]])
    plain, _ = policy_loss(old, logprobs, advantages, torch.ones(1, 2))
    assert plain.item() == pytest.approx((5.0 + 2.0) / 2)
    dual, metrics = policy_loss(old, logprobs, advantages, torch.ones(1, 2), dual_clip=3.0)
    assert dual.item() == pytest.approx((3.0 + 2.0) / 2)
    assert metrics["dual_clip_frac"] == pytest.approx(0.5)
    # positive advantages are never dual-clipped
    pos, _ = policy_loss(old, logprobs, -advantages, torch.ones(1, 2), dual_clip=3.0)
    assert pos.item() == pytest.approx(-(1.28 + 1.28) / 2)
    with pytest.raises(ValueError, match="dual_clip"):
        policy_loss(old, logprobs, advantages, torch.ones(1, 2), dual_clip=0.5)


def test_masked_tokens_do_not_count():
    old = torch.zeros(1, 3)
    logprobs = torch.log(torch.tensor([[1.0, 10.0, 1.0]]))
    loss, metrics = policy_loss(old, logprobs, torch.ones(1, 3), torch.tensor([[1.0, 0.0, 1.0]]))
    assert loss.item() == pytest.approx(-1.0)
    assert metrics["clip_frac"] == 0.0
    assert metrics["ratio_max"] == pytest.approx(1.0)


LOSS_MAT = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [9.0, 9.0, 9.0]])
LOSS_MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # last row fully masked


@pytest.mark.parametrize(
    "mode, horizon, expected",
    [
        ("token-mean", None, (1 + 2 + 4) / 3),
        ("seq-mean-token-mean", None, ((1 + 2) / 2 + 4 / 1) / 2),
        ("seq-mean-token-sum", None, ((1 + 2) + 4) / 2),
        ("seq-mean-token-sum-norm", None, ((1 + 2) + 4) / 2 / 3),
        ("seq-mean-token-sum-norm", 7, ((1 + 2) + 4) / 2 / 7),
    ],
)
def test_aggregation_modes(mode, horizon, expected):
    assert agg_loss(LOSS_MAT, LOSS_MASK, mode, horizon=horizon).item() == pytest.approx(expected)


def test_unknown_aggregation_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="seq-mean-token-mean"):
        agg_loss(LOSS_MAT, LOSS_MASK, "sequence-mean")


D = math.log(2.0)  # logprob - ref_logprob for p = 0.5, p_ref = 0.25


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("k1", D),
        ("kl", D),
        ("abs", D),
        ("k2", D * D / 2),
        ("mse", D * D / 2),
        ("k3", 0.5 - 1 + D),
        ("low_var_kl", 0.5 - 1 + D),
    ],
)
def test_kl_estimators_by_hand(kind, expected):
    value = kl_penalty(torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]]), kind)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_abs_differs_from_k1_when_the_policy_is_below_the_reference():
    logp, ref = torch.tensor([[math.log(0.25)]]), torch.tensor([[math.log(0.5)]])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(-D)
    assert kl_penalty(logp, ref, "abs").item() == pytest.approx(D)


def test_k1_and_k3_are_unbiased_and_k3_has_lower_variance():
    """Monte Carlo over tokens sampled from pi: mean estimate vs the exact KL(pi || ref)."""
    gen = torch.Generator().manual_seed(0)
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    ref = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    exact = float((pi * (pi / ref).log()).sum())
    tokens = torch.multinomial(pi, 200_000, replacement=True, generator=gen)
    logp, logr = pi.log()[tokens], ref.log()[tokens]
    k1, k3 = kl_penalty(logp, logr, "k1"), kl_penalty(logp, logr, "k3")
    assert k1.mean().item() == pytest.approx(exact, abs=2e-3)
    assert k3.mean().item() == pytest.approx(exact, abs=2e-3)
    assert k3.var() < k1.var()
    assert (k3 >= 0).all()


def test_straight_through_kl_keeps_the_value_and_takes_the_k2_gradient():
    logp = torch.tensor([[math.log(0.5)]], requires_grad=True)
    ref = torch.tensor([[math.log(0.25)]])
    value = kl_penalty(logp, ref, "k3+")
    assert value.item() == pytest.approx(0.5 - 1 + D, rel=1e-6)
    value.sum().backward()
    assert logp.grad.item() == pytest.approx(D, rel=1e-6)  # d/dlogp of (logp - ref)^2 / 2


def test_kl_loss_aggregates_and_reports():
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    loss, metrics = kl_loss(logp, ref, torch.tensor([[1.0, 1.0]]), kind="k1")
    assert loss.item() == pytest.approx(D / 2)
    assert metrics["kl"] == pytest.approx(D / 2)
    with pytest.raises(ValueError, match="low_var_kl"):
        kl_penalty(logp, ref, "k4")


def test_entropy_from_logits():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, -1e9, -1e9]]])
    entropy = entropy_from_logits(logits)
    p = torch.tensor([0.75, 0.25])
    assert entropy[0].tolist() == pytest.approx([math.log(4), 0.0, float(-(p * p.log()).sum())], abs=1e-6)
    value, metrics = entropy_loss(logits, torch.tensor([[1.0, 1.0, 0.0]]))
    assert value.item() == pytest.approx(math.log(4) / 2, abs=1e-6)
    assert metrics["entropy"] == pytest.approx(value.item())


def _padded(row, width):
    loss = torch.zeros(1, width)
    mask = torch.zeros(1, width)
    loss[0, : len(row)] = torch.tensor(row)
    mask[0, : len(row)] = 1.0
    return loss, mask


def test_dr_grpo_horizon_makes_a_sequence_weigh_the_same_at_any_padded_width():
    row = [0.5, -1.0, 2.0, 0.25]
    with_horizon = {w: agg_loss(*_padded(row, w), "seq-mean-token-sum-norm", horizon=512).item()
                    for w in (10, 40, 400)}
    assert len(set(with_horizon.values())) == 1
    assert with_horizon[10] == pytest.approx(sum(row) / 512)
    # without the horizon the divisor is the padded width: 1.0 / 0.25 / 0.025 of the width-10 weight
    without = [agg_loss(*_padded(row, w), "seq-mean-token-sum-norm").item() for w in (10, 40, 400)]
    assert without == pytest.approx([sum(row) / 10, sum(row) / 40, sum(row) / 400])


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                                  "seq-mean-token-sum-norm"])
def test_micro_batch_losses_with_mini_batch_totals_add_up_to_the_mini_batch_loss(mode):
    """verl's rule: each micro-batch is divided by the mini-batch's token / sequence count, so the sum over
    micro-batches (and its gradient) is the mini-batch's loss whatever the split and the micro-batch widths."""
    from mapo.core.losses import batch_totals

    gen = torch.Generator().manual_seed(0)
    lengths = [1, 7, 3, 12, 0, 5]
    loss = torch.randn(len(lengths), 12, generator=gen, dtype=torch.float64)
    mask = torch.zeros(len(lengths), 12)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1.0
    whole = agg_loss(loss, mask, mode, horizon=64)
    totals = batch_totals(mask)
    for split in ([[0, 1, 2], [3, 4, 5]], [[0], [1], [2], [3], [4], [5]], [[1, 3], [0, 2, 4, 5]]):
        # each micro-batch cut to its own longest row, as the trainer's forward pass does
        parts = [agg_loss(loss[mb, : max(1, max(lengths[i] for i in mb))], mask[mb, : max(1, max(lengths[i] for i in mb))],
                          mode, horizon=64, **totals) for mb in split]
        assert sum(p.item() for p in parts) == pytest.approx(whole.item(), rel=1e-12)
    # the old per-micro-batch token-mean, weighted by the micro-batch's share of sequences, does not add up
    if mode == "token-mean":
        old = sum(agg_loss(loss[mb], mask[mb], mode).item() * len(mb) / 6 for mb in ([0, 1, 2], [3, 4, 5]))
        assert old != pytest.approx(whole.item(), rel=1e-3)
