"""grpo and rloo agree with verl's estimators (the verl extra; skipped cleanly where it is absent)."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch

from mapo.core.advantages import get_advantage

core_algos = pytest.importorskip("verl.trainer.ppo.core_algos", reason="needs the verl extra")

pytestmark = pytest.mark.verl

SIZES = [(1, 1), (2, 7), (16, 64), (100, 3), (257, 129), (512, 512)]


def _random_batch(seed: int, batch: int, length: int):
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    rewards = torch.randn(batch, length, generator=gen) * float(rng.uniform(0.1, 5))
    mask = (torch.rand(batch, length, generator=gen) < rng.uniform(0.1, 1.0)).float()
    n_groups = int(rng.integers(1, batch + 1))
    index = rng.integers(0, n_groups, size=batch)  # random group sizes, singletons included
    if seed % 2:
        index = np.array([f"uid-{i}" for i in index], dtype=object)
    return rewards, mask, index


@pytest.mark.parametrize("batch, length", SIZES)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_matches_verl(batch, length, seed, norm_by_std):
    rewards, mask, index = _random_batch(seed * 1000 + batch, batch, length)
    ours, ours_returns = get_advantage("grpo")(
        rewards.clone(), mask, index, norm_by_std=norm_by_std
    )
    theirs, _ = core_algos.compute_grpo_outcome_advantage(
        rewards.clone(), mask, index, norm_adv_by_std_in_grpo=norm_by_std
    )
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert torch.equal(ours, ours_returns)


@pytest.mark.parametrize("batch, length", SIZES)
def test_rloo_matches_verl(batch, length):
    rewards, mask, index = _random_batch(batch, batch, length)
    ours, _ = get_advantage("rloo")(rewards.clone(), mask, index)
    theirs, _ = core_algos.compute_rloo_outcome_advantage(rewards.clone(), mask, index)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_tied_groups_are_bit_identical_to_verl_when_zero_ties_is_off():
    """verl turns exact ties into rounding noise / 1e-6; zero_ties=False reproduces it, the default gives 0."""
    rewards = torch.zeros(16, 4)
    rewards[:, -1] = 5.3  # 8 equal rewards per group: fl(mean) is one ulp off, the std is ~5e-7
    mask = torch.ones(16, 4)
    index = np.repeat([0, 1], 8)
    theirs, _ = core_algos.compute_grpo_outcome_advantage(rewards.clone(), mask, index)
    exact, _ = get_advantage("grpo")(rewards.clone(), mask, index, zero_ties=False)
    assert torch.equal(exact, theirs)
    ours, _ = get_advantage("grpo")(rewards.clone(), mask, index)
    assert (ours == 0).all()
    # The reason for the default: verl's "advantage" of a tie is not small.
    assert theirs.abs().max() > 0.1


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("dual_clip", [None, 3.0])
def test_policy_loss_and_aggregation_match_verl(mode, dual_clip):
    from mapo.core.losses import policy_loss

    gen = torch.Generator().manual_seed(3)
    old = torch.randn(8, 33, generator=gen) - 1
    new = old + 0.5 * torch.randn(8, 33, generator=gen)
    adv = torch.randn(8, 33, generator=gen)
    mask = (torch.rand(8, 33, generator=gen) < 0.7).float()
    ours, metrics = policy_loss(
        old, new, adv, mask, clip_low=0.2, clip_high=0.28, dual_clip=dual_clip, agg=mode
    )
    with _quiet():  # verl marks compute_policy_loss deprecated; its math is what we compare
        theirs, clipfrac, ppo_kl, _ = core_algos.compute_policy_loss(
            old,
            new,
            adv,
            mask,
            cliprange=0.2,
            cliprange_low=0.2,
            cliprange_high=0.28,
            clip_ratio_c=dual_clip if dual_clip is not None else 1e9,
            loss_agg_mode=mode,
        )
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    assert metrics["clip_frac"] == pytest.approx(clipfrac.item(), abs=1e-6)
    assert metrics["approx_kl"] == pytest.approx(ppo_kl.item(), abs=1e-6)


@pytest.mark.parametrize("kind", ["kl", "abs", "mse", "low_var_kl", "k1", "k2", "k3"])
def test_kl_penalty_matches_verl(kind):
    from mapo.core.losses import kl_penalty

    gen = torch.Generator().manual_seed(4)
    logp, ref = torch.randn(4, 50, generator=gen) - 2, torch.randn(4, 50, generator=gen) - 2
    torch.testing.assert_close(kl_penalty(logp, ref, kind), core_algos.kl_penalty(logp, ref, kind))


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
