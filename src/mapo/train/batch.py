"""Trajectories -> padded training tensors (pure functions; no model).

Shapes: B trajectories, L = the longest response in the batch, T = most tool calls of any trajectory.
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


def tool_call_token_turn(traj: Trajectory) -> torch.Tensor:
    """``LongTensor[L]``: for each response token, the index of the tool call its assistant turn issued
    (0-based over the turns that called the tool), ``T_i`` (= number of tool calls) for tokens of turns that
    issued none (the answer turn, a malformed turn), and -1 for observation tokens (mapo.core's convention)."""
    turn_to_call: dict[int, int] = {}
    for rec in traj.turns:
        if rec.parsed.tool_call is not None:
            turn_to_call[rec.index] = len(turn_to_call)
    n_calls = len(turn_to_call)
    out = torch.full_like(traj.token_turn, -1)
    for l, turn in enumerate(traj.token_turn.tolist()):
        if turn >= 0:
            out[l] = turn_to_call.get(turn, n_calls)
    return out


def verifier_pairs(traj: Trajectory) -> list[tuple[str, object | None]]:
    """(claim text, crop at original resolution or None when the call failed) for each tool call, in order.
    The claim is the call's ``label`` (or the ``<description>`` in description mode; "" when missing)."""
    return [(rec.claim or "", rec.tool.crop if rec.tool is not None and rec.tool.ok else None)
            for rec in traj.tool_calls]


def rl_batch(trajs: Sequence[Trajectory], rewards: Sequence[float],
             turn_scores: Sequence[Sequence[float]]) -> dict[str, torch.Tensor]:
    """The estimator's inputs: ``token_level_rewards [B, L]`` (R_i on the last generated token),
    ``response_mask [B, L]`` (float), ``old_logprobs [B, L]``, ``token_turn [B, L]`` (tool-call indices),
    ``turn_scores [B, T]`` and ``turn_mask [B, T]``."""
    from mapo.core.semantic import pad_turn_scores

    mask = pad_right([t.response_mask.float() for t in trajs], 0.0, torch.float32)
    rewards_t = torch.zeros_like(mask)
    for i, (traj, r) in enumerate(zip(trajs, rewards)):
        gen = traj.response_mask.nonzero()
        # A trajectory with no generated token (possible only under extreme truncation) carries its reward on
        # token 0 with mask 0: its advantage is zero, so it does not move the policy.
        last = int(gen[-1]) if len(gen) else 0
        rewards_t[i, last] = float(r)
    scores, turn_mask = pad_turn_scores(turn_scores)
    return {
        "token_level_rewards": rewards_t,
        "response_mask": mask,
        "old_logprobs": pad_right([t.old_logprobs.float() for t in trajs], 0.0, torch.float32),
        "token_turn": pad_right([tool_call_token_turn(t) for t in trajs], -1, torch.long),
        "turn_scores": scores,
        "turn_mask": turn_mask,
    }
