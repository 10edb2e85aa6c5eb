"""MAPO's variance claim, checked in a simulated bandit (mapo.core.bandit), and where it stops holding.

Setting: 5 actions with qualities -1 .. 1, uniform policy, groups of 8. Outcome R = q + 2.0 * noise;
semantic score S = rho * q + 0.5 * noise (one tool call per rollout). 2000 groups per seed.

Measured (seeds 0-4, ``python -c`` over mapo.core.bandit, see the report):
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

import pytest

from mapo.core.bandit import BanditSetting, bandit_gradients, gradient_stats

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
