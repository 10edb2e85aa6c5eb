"""Trajectories -> padded training tensors (pure functions; no model).

Shapes: B trajectories, L = the longest response in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mapo.agent.trajectory import Trajectory


def pad_right(rows: Sequence[torch.Tensor], value: float = 0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Stack 1-D tensors of different lengths into ``[B, max_len]``, padding on the right with ``value``."""
    width = max([len(r) for r in rows] + [1])
    out = torch.full((len(rows), width), value, dtype=dtype or (rows[0].dtype if rows else torch.float32))
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def rl_batch(trajs: Sequence[Trajectory], rewards: Sequence[float]) -> dict[str, torch.Tensor]:
    """The outcome side of the estimator's inputs and the loss's: ``token_level_rewards [B, L]`` (R_i on the
    last generated token), ``response_mask [B, L]`` (float) and ``old_logprobs [B, L]``. The turn tensors come
    from the scoring seam, :func:`mapo.agent.call_scores.score_tool_calls`, with the same ``L``."""
    mask = pad_right([t.response_mask.float() for t in trajs], 0.0, torch.float32)
    rewards_t = torch.zeros_like(mask)
    for i, (traj, r) in enumerate(zip(trajs, rewards)):
        gen = traj.response_mask.nonzero()
        # A trajectory with no generated token (possible only under extreme truncation) carries its reward on
        # token 0 with mask 0: its advantage is zero, so it does not move the policy.
        last = int(gen[-1]) if len(gen) else 0
        rewards_t[i, last] = float(r)
    return {
        "token_level_rewards": rewards_t,
        "response_mask": mask,
        "old_logprobs": pad_right([t.old_logprobs.float() for t in trajs], 0.0, torch.float32),
    }
