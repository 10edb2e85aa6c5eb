"""Scored tool calls -> the turn tensors the estimators take (pure tensor bookkeeping, both trainers).

A trajectory's tool calls arrive in call order as ``(assistant_turn, score)`` pairs: ``assistant_turn`` is the
0-based assistant turn that issued the call, ``score`` the verifier's cosine of its claim against its crop, or
``None`` for a call that returned no crop (malformed, unknown tool, rejected box). The one rule for failed
calls, in ``mapo train`` and under verl alike: such a call counts as a call (the model spent a turn on it) and
scores ``failed_call_score``. Several calls in one assistant turn (verl's ``max_parallel_calls > 1``) are
averaged into that turn's one call, since mapo counts one tool call per assistant turn.

``assistant_turn [B, L]`` gives each response token's assistant turn, -1 for tokens the model did not
generate: ``Trajectory.token_turn`` in mapo's agent, the runs of ``response_mask`` under verl.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mapo.core.params import DEFAULTS
from mapo.core.semantic import pad_turn_scores

#: One tool call: (assistant turn that issued it, verifier score or None when it returned no crop).
Call = tuple[int, float | None]


def calls_per_turn(calls: Sequence[Call], failed_call_score: float = DEFAULTS.failed_call_score) -> dict[int, float]:
    """``{assistant turn: score}`` in turn order; a failed call scores ``failed_call_score``; several calls of
    one turn are averaged."""
    grouped: dict[int, list[float]] = {}
    for turn, score in calls:
        grouped.setdefault(int(turn), []).append(float(failed_call_score) if score is None else float(score))
    return {turn: sum(v) / len(v) for turn, v in sorted(grouped.items())}


def token_call_index(assistant_turn: torch.Tensor, call_turns: Sequence[Sequence[int]]) -> torch.Tensor:
    """The token-to-tool-call mapping: ``LongTensor[B, L]`` = ``t`` for tokens of the assistant turn that made
    tool call ``t`` (0-based over the turns that called), ``T_i`` (the number of calls) for tokens of turns
    without a call (the answer), -1 where ``assistant_turn`` is -1 (prompt, observations, padding).

    Args:
        assistant_turn: ``[B, L]`` long, the assistant turn of each response token (-1: not generated).
        call_turns: per row, the assistant turns that made a call, ascending.
    """
    if len(call_turns) != assistant_turn.shape[0]:
        raise ValueError(f"{len(call_turns)} rows of calls for a batch of {assistant_turn.shape[0]} trajectories; "
                         "pass one (possibly empty) list of calls per trajectory")
    assistant_turn = assistant_turn.long()
    out = torch.full_like(assistant_turn, -1)
    for i, turns in enumerate(call_turns):
        row = assistant_turn[i]
        lookup = torch.full((int(row.max().clamp_min(0)) + 1,), len(turns), dtype=torch.long)
        for call_index, turn in enumerate(turns):
            if 0 <= turn < lookup.shape[0]:
                lookup[turn] = call_index
        out[i] = torch.where(row >= 0, lookup[row.clamp_min(0)], row)
    return out


def turn_tensors(calls: Sequence[Sequence[Call]], assistant_turn: torch.Tensor,
                 failed_call_score: float = DEFAULTS.failed_call_score,
                 dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The estimator inputs of a batch from its scored calls.

    Args:
        calls: per trajectory, its ``(assistant_turn, score | None)`` calls (``[]``: no tool call).
        assistant_turn: ``[B, L]`` the assistant turn of each response token, -1 where not generated.
        failed_call_score: the score of a call that returned no crop.

    Returns:
        ``turn_scores [B, T]`` and ``turn_mask [B, T]`` (``dtype``; call ``t`` of row ``i`` in column ``t``) and
        ``token_turn [B, L]`` long (:func:`token_call_index`): pass them to any estimator as keywords.
    """
    per_turn = [calls_per_turn(row, failed_call_score) for row in calls]
    turn_scores, turn_mask = pad_turn_scores([list(p.values()) for p in per_turn], dtype=dtype)
    token_turn = token_call_index(assistant_turn, [list(p) for p in per_turn])
    return {"turn_scores": turn_scores, "turn_mask": turn_mask, "token_turn": token_turn}


__all__ = ["Call", "calls_per_turn", "token_call_index", "turn_tensors"]
