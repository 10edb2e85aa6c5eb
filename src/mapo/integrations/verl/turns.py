"""Carried per-call alignment records -> the turn tensors of mapo's estimators (pure functions).

Inside verl the verifier scores each zoom where the crop lives (the tool, in an agent-loop worker) and the
score travels as a small record in ``AgentLoopOutput.extra_fields[TURNS_KEY]``; verl turns every
``extra_fields`` key into a ``non_tensor_batch`` column (an object array, ``None`` for rows without it).
This module rebuilds ``turn_scores [B, T]``, ``turn_mask [B, T]`` and ``token_turn [B, L]`` from that column
and verl's ``response_mask``, with mapo.core's conventions (see :mod:`mapo.core.advantages`).

A record is ``{"turn": a, "score": s, "ok": bool}``: ``a`` = the 0-based *assistant turn* that issued the
call, ``s`` = the verifier cosine of its label vs its crop, ``ok`` = a crop came back (when False, ``s`` is
ignored and the estimator side's ``failed_call_score`` is used, so that one setting decides it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mapo.core.semantic import pad_turn_scores

#: The ``extra_fields`` / ``non_tensor_batch`` key that carries the per-call records.
TURNS_KEY = "mapo_turns"


def turn_record(assistant_turn: int, score: float, ok: bool) -> dict[str, Any]:
    """One carried record (plain types only: it crosses Ray and lands in a numpy object array)."""
    return {"turn": int(assistant_turn), "score": float(score), "ok": bool(ok)}


def calls_per_turn(records: Sequence[dict[str, Any]] | None, failed_call_score: float = -1.0) -> dict[int, float]:
    """``{assistant turn: score}`` in call order; several calls in one turn (``max_parallel_calls > 1``) are
    averaged into that turn's one score, since mapo counts one tool call per assistant turn. A failed call
    (``ok`` False) scores ``failed_call_score``."""
    grouped: dict[int, list[float]] = {}
    for rec in records or []:
        score = float(rec["score"]) if rec.get("ok", True) else float(failed_call_score)
        grouped.setdefault(int(rec["turn"]), []).append(score)
    return {turn: sum(v) / len(v) for turn, v in sorted(grouped.items())}


def assistant_turn_of_tokens(response_mask: torch.Tensor) -> torch.Tensor:
    """``LongTensor[B, L]``: the 0-based assistant turn of each generated token, -1 elsewhere.

    In verl's multi-turn responses the generated turns are the runs of ``response_mask == 1`` separated by
    tool observations (mask 0), so the ``k``-th run is assistant turn ``k``.
    """
    mask = response_mask.bool()
    starts = mask & ~torch.nn.functional.pad(mask[:, :-1], (1, 0), value=False)
    run_index = torch.cumsum(starts.long(), dim=1) - 1
    return torch.where(mask, run_index, torch.full_like(run_index, -1))


def turn_tensors(
    records: Sequence[Sequence[dict[str, Any]] | None], response_mask: torch.Tensor, failed_call_score: float = -1.0
) -> dict[str, torch.Tensor]:
    """The estimator inputs for a batch.

    Args:
        records: per trajectory, its carried records (``None`` or ``[]``: no tool call).
        response_mask: ``[B, L]`` verl's response mask (1 = generated token).
        failed_call_score: the score of a call that returned no crop.

    Returns:
        ``turn_scores [B, T]`` float32 and ``turn_mask [B, T]`` (tool call ``t`` of row ``i`` in column ``t``),
        ``token_turn [B, L]`` long: the tool-call index of the assistant turn that produced each token,
        ``T_i`` for turns that issued no call (the answer), -1 for tokens the model did not generate.
    """
    if len(records) != response_mask.shape[0]:
        raise ValueError(f"{len(records)} rows of {TURNS_KEY!r} for a batch of {response_mask.shape[0]}; the "
                         "column must come from the same batch as response_mask")
    per_turn = [calls_per_turn(r, failed_call_score) for r in records]
    turn_scores, turn_mask = pad_turn_scores([list(p.values()) for p in per_turn])
    assistant = assistant_turn_of_tokens(response_mask)
    token_turn = torch.full_like(assistant, -1)
    for i, calls in enumerate(per_turn):
        # assistant turn -> tool-call index; turns without a call (the answer) read T_i
        lookup = torch.full((int(assistant[i].max().clamp_min(0)) + 1,), len(calls), dtype=torch.long)
        for call_index, turn in enumerate(calls):
            if turn < lookup.shape[0]:
                lookup[turn] = call_index
        row = assistant[i]
        token_turn[i] = torch.where(row >= 0, lookup[row.clamp_min(0)], row)
    return {"turn_scores": turn_scores, "turn_mask": turn_mask, "token_turn": token_turn}
