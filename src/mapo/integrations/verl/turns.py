"""Carried per-call alignment records -> the turn tensors of mapo's estimators (pure functions).

Inside verl the verifier scores each zoom where the crop lives (the tool, in an agent-loop worker) and the
score travels as a small record in ``AgentLoopOutput.extra_fields[TURNS_KEY]``; verl turns every
``extra_fields`` key into a ``non_tensor_batch`` column (an object array, ``None`` for rows without it).
This module reads that column as mapo's scored calls and builds ``turn_scores [B, T]``, ``turn_mask [B, T]``
and ``token_turn [B, L]`` with :func:`mapo.core.turns.turn_tensors`, the function ``mapo train`` uses too.

A record is ``{"turn": a, "score": s, "ok": bool}``: ``a`` = the 0-based *assistant turn* that issued the
call, ``s`` = the verifier cosine of its label vs its crop, ``ok`` = a crop came back (when False, ``s`` is
ignored and ``failed_call_score`` is used: mapo's one rule for failed calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mapo.core.params import DEFAULTS
from mapo.core.turns import Call
from mapo.core.turns import turn_tensors as _turn_tensors

#: The ``extra_fields`` / ``non_tensor_batch`` key that carries the per-call records.
TURNS_KEY = "mapo_turns"


def turn_record(assistant_turn: int, score: float, ok: bool) -> dict[str, Any]:
    """One carried record (plain types only: it crosses Ray and lands in a numpy object array)."""
    return {"turn": int(assistant_turn), "score": float(score), "ok": bool(ok)}


def record_calls(records: Sequence[dict[str, Any]] | None) -> list[Call]:
    """Carried records -> mapo's ``(assistant turn, score | None)`` calls (None: the call returned no crop)."""
    return [(int(r["turn"]), float(r["score"]) if r.get("ok", True) else None) for r in records or []]


def assistant_turn_of_tokens(response_mask: torch.Tensor) -> torch.Tensor:
    """``LongTensor[B, L]``: the 0-based assistant turn of each generated token, -1 elsewhere.

    In verl's multi-turn responses the generated turns are the runs of ``response_mask == 1`` separated by
    tool observations (mask 0), so the ``k``-th run is assistant turn ``k``.
    """
    mask = response_mask.bool()
    starts = mask & ~torch.nn.functional.pad(mask[:, :-1], (1, 0), value=False)
    run_index = torch.cumsum(starts.long(), dim=1) - 1
    return torch.where(mask, run_index, torch.full_like(run_index, -1))


def turn_tensors(records: Sequence[Sequence[dict[str, Any]] | None], response_mask: torch.Tensor,
                 failed_call_score: float = DEFAULTS.failed_call_score) -> dict[str, torch.Tensor]:
    """The estimator inputs for a batch.

    Args:
        records: per trajectory, its carried records (``None`` or ``[]``: no tool call).
        response_mask: ``[B, L]`` verl's response mask (1 = generated token).
        failed_call_score: the score of a call that returned no crop.

    Returns:
        ``turn_scores [B, T]`` float32, ``turn_mask [B, T]`` and ``token_turn [B, L]`` long, as
        :func:`mapo.core.turns.turn_tensors`.
    """
    if len(records) != response_mask.shape[0]:
        raise ValueError(f"{len(records)} rows of {TURNS_KEY!r} for a batch of {response_mask.shape[0]}; the "
                         "column must come from the same batch as response_mask")
    return _turn_tensors([record_calls(r) for r in records], assistant_turn_of_tokens(response_mask),
                         failed_call_score)
