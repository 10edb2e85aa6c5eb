"""Advantage math: mapo's estimators vs verl's GRPO on ~1M response tokens.

mapo's ``grpo`` must match verl's ``compute_grpo_outcome_advantage`` to 1e-6 (the core issue's contract), so
this benchmark checks parity on the same input before it times anything. ``mapo`` and ``mapo_turn`` do more
work than GRPO (a second group normalisation over discounted per-turn verifier scores); they are timed
against the same verl references to show what that extra work costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from harness import Figure, median, speedup_from_times, time_interleaved

NAME = "advantages"


@dataclass
class AdvantageBatch:
    """A verl-shaped batch with MAPO's per-turn fields. B trajectories, L response tokens, T tool turns."""

    token_level_rewards: torch.Tensor
    """[B, L] float: the outcome reward on each trajectory's last response token, 0 elsewhere (verl layout)."""
    response_mask: torch.Tensor
    """[B, L] float: 1 on response tokens (a random length per row), 0 on padding."""
    index: np.ndarray
    """[B] object: the prompt uid of each trajectory (strings, as verl passes them); G rows per uid."""
    turn_scores: torch.Tensor
    """[B, T] float: verifier cosine per tool turn, in [-1, 1]."""
    turn_mask: torch.Tensor
    """[B, T] bool: which turns exist (a prefix of 0..T turns per row)."""
    token_turn: torch.Tensor
    """[B, L] long: the assistant turn of each response token, -1 on padding."""

    @property
    def tokens(self) -> int:
        return int(self.response_mask.sum().item())


def make_batch(n_prompts: int, group_size: int, length: int, max_turns: int, seed: int = 0) -> AdvantageBatch:
    """Random batch of ``n_prompts * group_size`` trajectories of up to ``length`` tokens and ``max_turns``."""
    gen = torch.Generator().manual_seed(seed)
    b = n_prompts * group_size
    lengths = torch.randint(length // 4, length + 1, (b,), generator=gen)
    positions = torch.arange(length).expand(b, length)
    response_mask = (positions < lengths[:, None]).float()
    outcome = torch.randint(0, 2, (b,), generator=gen).float()
    token_level_rewards = torch.zeros(b, length)
    token_level_rewards[torch.arange(b), lengths - 1] = outcome
    n_turns = torch.randint(0, max_turns + 1, (b,), generator=gen)
    turn_mask = torch.arange(max_turns).expand(b, max_turns) < n_turns[:, None]
    turn_scores = (torch.rand(b, max_turns, generator=gen) * 2 - 1) * turn_mask
    # Tokens split evenly over the n+1 assistant turns (n tool turns, then the answer turn).
    segment = (lengths // (n_turns + 1)).clamp(min=1)
    token_turn = torch.minimum(positions // segment[:, None], n_turns[:, None])
    token_turn = torch.where(response_mask.bool(), token_turn, torch.full_like(token_turn, -1))
    index = np.array([f"uid-{i // group_size}" for i in range(b)], dtype=object)
    return AdvantageBatch(token_level_rewards, response_mask, index, turn_scores, turn_mask, token_turn)


def _mapo_call(name: str, batch: AdvantageBatch):
    from mapo.core.advantages import get_advantage

    fn = get_advantage(name)

    def call():
        return fn(
            batch.token_level_rewards,
            batch.response_mask,
            batch.index,
            turn_scores=batch.turn_scores,
            turn_mask=batch.turn_mask,
            token_turn=batch.token_turn,
        )

    return call


def run(quick: bool = False) -> list[Figure]:
    from verl.trainer.ppo.core_algos import (
        compute_grpo_outcome_advantage,
        compute_grpo_vectorized_outcome_advantage,
    )

    # 2048 trajectories of 204..816 response tokens (uniform): ~1.04M response tokens in all.
    n_prompts, group_size, length = (32, 8, 128) if quick else (256, 8, 816)
    repeats = 3 if quick else 7
    batch = make_batch(n_prompts, group_size, length, max_turns=6)

    def verl_loop():
        return compute_grpo_outcome_advantage(batch.token_level_rewards, batch.response_mask, batch.index)

    def verl_vec():
        return compute_grpo_vectorized_outcome_advantage(
            batch.token_level_rewards, batch.response_mask, batch.index
        )

    candidates = {
        "verl_loop": verl_loop,
        "verl_vectorized": verl_vec,
        "grpo": _mapo_call("grpo", batch),
        "mapo": _mapo_call("mapo", batch),
        "mapo_turn": _mapo_call("mapo_turn", batch),
    }
    parity = (candidates["grpo"]()[0] - verl_loop()[0]).abs().max().item()
    times = time_interleaved(candidates, repeats=repeats, warmup=1)
    ms = {name: median(ts) * 1e3 for name, ts in times.items()}
    size = f"{batch.tokens / 1e6:.2f}M response tokens, B={len(batch.index)}, G={group_size}"
    references = {
        "verl_loop": "verl compute_grpo_outcome_advantage",
        "verl_vectorized": "verl compute_grpo_vectorized_outcome_advantage",
    }
    figures = []
    for estimator in ("grpo", "mapo", "mapo_turn"):
        for ref, ref_name in references.items():
            note = size
            if estimator == "grpo":
                note += f"; max |mapo - verl| = {parity:.1e}"
            figures.append(
                Figure(
                    benchmark=NAME,
                    measure=f"mapo `{estimator}`",
                    unit="ms",
                    mapo=ms[estimator],
                    reference=ms[ref],
                    reference_name=ref_name,
                    speedup=speedup_from_times(ms[estimator], ms[ref]),
                    note=note,
                    extra={"seconds": {estimator: times[estimator], ref: times[ref]}, "tokens": batch.tokens},
                )
            )
    if parity > 1e-5:
        raise AssertionError(f"mapo grpo disagrees with verl's GRPO by {parity:.2e} (contract: 1e-6)")
    return figures
