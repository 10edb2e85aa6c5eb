"""MAPO's variance claim, checked in a simulated bandit (the simulation below), and where it stops holding.

Setting: 5 actions with qualities -1 .. 1, uniform policy, groups of 8. Outcome R = q + 2.0 * noise;
semantic score S = rho * q + 0.5 * noise (one tool call per rollout). 2000 groups per seed.

Measured (seeds 0-4, ``python -c`` over the simulation below, see the report):
- assumptions hold (rho = 1, S less noisy than R): relative variance of the REINFORCE gradient
  (trace Cov(g) / ||E g||^2) drops from ~5.0 (grpo) to ~1.7 (mapo, beta = 0.4), a ratio of ~0.33; the mean
  cosine to the true gradient of expected quality rises from ~0.39 to ~0.60.
- assumption violated (rho = 0, the score ignores quality): mapo is *worse*: relative variance ~1.13-1.19x
  grpo's, cosine drops ~0.39 -> ~0.37. The semantic term is pure noise added to every advantage.
- the raw (unnormalised) variance of mapo is always higher (~0.108 vs ~0.083): its advantages are larger
  (two unit-variance terms); what drops is the noise per unit of expected step, which is what a fixed
  learning rate or an adaptive optimiser sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from mapo.core.advantages import get_advantage

# ---- the simulated bandit ----------------------------------------------------------------------
# A simulated bandit that measures the variance of score-function gradients under different advantages.
#
# The setting of MAPO's variance argument: an action ``a`` (think: a zoom) has a latent quality ``q_a``; the
# outcome reward is a noisy function of it, ``R = q_a + sigma_r * eps``; the semantic score is a less noisy
# signal positively correlated with it, ``S = rho * q_a + sigma_s * eps'`` (``rho = 0`` breaks the assumption:
# the score is then unrelated to quality). The policy is a softmax over ``K`` logits; one draw samples a group
# of ``G`` actions, computes advantages with a registered estimator and the REINFORCE estimate
#
#     g = (1 / G) sum_i A_i grad_theta log pi(a_i) = (1 / G) sum_i A_i (e_{a_i} - pi)     [K]
#
# Across draws we report ``E[g]`` (signal), ``E||g - E g||^2`` (variance) and their ratio, the relative
# variance, which does not depend on the advantage's overall scale (MAPO's ``1 + beta`` larger advantages
# must not count as more noise), and the mean cosine between each ``g`` and the true gradient of expected
# quality ``pi * (q - pi . q)``.


@dataclass(frozen=True)
class BanditSetting:
    """One bandit problem and its noise model."""

    qualities: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    """latent quality ``q_a`` of each of the K actions."""
    logits: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    """policy logits; the gradient is taken at this point."""
    outcome_noise: float = 2.0
    """``sigma_r``: std of the Gaussian noise on the outcome reward."""
    semantic_noise: float = 0.5
    """``sigma_s``: std of the Gaussian noise on the semantic score."""
    semantic_quality_weight: float = 1.0
    """``rho``: how much the semantic score follows quality (1: correlated, 0: unrelated)."""
    group_size: int = 8
    """``G``: rollouts per group."""


@dataclass(frozen=True)
class GradientStats:
    """Statistics of the gradient estimate ``g`` across draws."""

    signal: float
    """``||E[g]||^2``."""
    variance: float
    """``E||g - E[g]||^2`` (trace of the covariance)."""
    relative_variance: float
    """``variance / signal``: noise per unit of expected step, scale-free."""
    cosine_to_true: float
    """mean cosine between ``g`` and the true gradient of expected quality."""


def bandit_gradients(
    setting: BanditSetting, estimator: str, n_draws: int, seed: int, **params: Any
) -> np.ndarray:
    """``[n_draws, K]`` REINFORCE gradient estimates with advantages from the registered ``estimator``.

    Each draw is one group; all draws go through the estimator as one batch of ``n_draws * G`` trajectories
    with one group id per draw. Each trajectory makes one tool call whose score is ``S``. Seeded: the same
    ``seed`` gives the same actions and noise for every estimator (common random numbers).
    """
    rng = np.random.default_rng(seed)
    q = np.asarray(setting.qualities, dtype=np.float64)
    logits = np.asarray(setting.logits, dtype=np.float64)
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    n = n_draws * setting.group_size
    actions = rng.choice(len(q), size=n, p=pi)
    outcome = q[actions] + setting.outcome_noise * rng.standard_normal(n)
    semantic = setting.semantic_quality_weight * q[actions] + setting.semantic_noise * rng.standard_normal(n)
    index = np.repeat(np.arange(n_draws), setting.group_size)
    advantages, _ = get_advantage(estimator)(
        torch.tensor(outcome).unsqueeze(1),
        torch.ones(n, 1, dtype=torch.float64),
        index,
        turn_scores=torch.tensor(semantic).unsqueeze(1),
        turn_mask=torch.ones(n, 1, dtype=torch.float64),
        token_turn=torch.zeros(n, 1, dtype=torch.long),
        **params,
    )
    score = np.eye(len(q))[actions] - pi  # grad log softmax at the sampled action
    per_rollout = advantages[:, 0].numpy()[:, None] * score
    return per_rollout.reshape(n_draws, setting.group_size, len(q)).mean(axis=1)


def gradient_stats(setting: BanditSetting, gradients: np.ndarray) -> GradientStats:
    """Signal, variance, relative variance and alignment of ``gradients [n_draws, K]``."""
    q = np.asarray(setting.qualities, dtype=np.float64)
    logits = np.asarray(setting.logits, dtype=np.float64)
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    true = pi * (q - pi @ q)
    mean = gradients.mean(axis=0)
    variance = float(((gradients - mean) ** 2).sum(axis=1).mean())
    signal = float(mean @ mean)
    norms = np.linalg.norm(gradients, axis=1) * np.linalg.norm(true)
    cosines = np.where(norms > 0, gradients @ true / np.where(norms > 0, norms, 1.0), 0.0)
    return GradientStats(
        signal=signal,
        variance=variance,
        relative_variance=variance / signal if signal > 0 else float("inf"),
        cosine_to_true=float(cosines.mean()),
    )


# ---- the claim --------------------------------------------------------------------------------
N_DRAWS = 2000
SEEDS = [0, 1, 2]


def _stats(setting: BanditSetting, seed: int):
    grpo = gradient_stats(setting, bandit_gradients(setting, "grpo", N_DRAWS, seed))
    mapo = gradient_stats(setting, bandit_gradients(setting, "mapo", N_DRAWS, seed, beta=0.4, lam=0.95))
    return grpo, mapo


@pytest.mark.parametrize("seed", SEEDS)
def test_mapo_lowers_gradient_variance_when_the_semantic_score_is_less_noisy_and_correlated(seed):
    grpo, mapo = _stats(BanditSetting(semantic_quality_weight=1.0, semantic_noise=0.5), seed)
    assert mapo.relative_variance < 0.5 * grpo.relative_variance  # measured ~0.33
    assert mapo.cosine_to_true > grpo.cosine_to_true + 0.1  # measured +0.2
    assert mapo.variance > grpo.variance  # larger advantages: raw variance alone would mislead


@pytest.mark.parametrize("seed", SEEDS)
def test_an_uncorrelated_semantic_score_makes_mapo_noisier_than_grpo(seed):
    grpo, mapo = _stats(BanditSetting(semantic_quality_weight=0.0, semantic_noise=0.5), seed)
    assert mapo.relative_variance > 1.05 * grpo.relative_variance  # measured ~1.13-1.19
    assert mapo.cosine_to_true < grpo.cosine_to_true


def test_the_comparison_uses_common_random_numbers():
    """Same seed, same actions and noise: with beta = 0 mapo's gradients are grpo's exactly."""
    setting = BanditSetting()
    grpo = bandit_gradients(setting, "grpo", 50, seed=7)
    mapo = bandit_gradients(setting, "mapo", 50, seed=7, beta=0.0)
    assert (grpo == mapo).all()
