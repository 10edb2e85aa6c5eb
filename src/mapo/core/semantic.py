"""Per-turn semantic scores -> per-trajectory and per-turn semantic signals (pure tensor math).

Vocabulary: ``s_it`` is the verifier's cosine score of trajectory ``i``'s ``t``-th tool call (label vs crop),
``t = 0 .. T_i - 1``; ``T_i`` is the number of tool calls trajectory ``i`` made. Batches carry them padded:
``turn_scores [B, T]`` with ``turn_mask [B, T]`` = 1 on the first ``T_i`` entries of row ``i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

Aggregate = Literal["mean", "sum", "min"]


def pad_turn_scores(
    scores: Sequence[Sequence[float]], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged per-trajectory turn scores -> ``(turn_scores [B, T], turn_mask [B, T])``.

    ``T = max_i len(scores[i])`` (at least 1, so a batch without any tool call still has a column);
    padding is 0 in both tensors. ``turn_mask`` is float of ``dtype`` (1.0 = the turn exists).
    """
    width = max([len(row) for row in scores] + [1])
    turn_scores = torch.zeros(len(scores), width, dtype=dtype)
    turn_mask = torch.zeros(len(scores), width, dtype=dtype)
    for i, row in enumerate(scores):
        if len(row):
            turn_scores[i, : len(row)] = torch.as_tensor(list(row), dtype=dtype)
            turn_mask[i, : len(row)] = 1.0
    return turn_scores, turn_mask


def check_turns(turn_scores: torch.Tensor, turn_mask: torch.Tensor) -> torch.Tensor:
    """Validate padded turn tensors; return ``T_i`` per row as ``LongTensor[B]``.

    Raises a ``ValueError`` naming the problem when shapes differ, scores are not finite on existing turns,
    or a row's mask is not a prefix (turns ``0 .. T_i - 1`` must be the existing ones).
    """
    if turn_scores.shape != turn_mask.shape or turn_scores.dim() != 2:
        raise ValueError(
            f"turn_scores {tuple(turn_scores.shape)} and turn_mask {tuple(turn_mask.shape)} must both be "
            "[B, T]; build them with mapo.core.semantic.pad_turn_scores(list_of_lists)."
        )
    exists = turn_mask.bool()
    if not torch.isfinite(turn_scores[exists]).all():
        raise ValueError(
            "turn_scores has NaN/inf on an existing turn; the verifier must return finite cosines."
        )
    n_turns = exists.sum(dim=1)
    prefix = torch.arange(turn_mask.shape[1]).unsqueeze(0) < n_turns.unsqueeze(1)
    if not torch.equal(prefix, exists):
        bad = int((prefix != exists).any(dim=1).nonzero()[0])
        raise ValueError(
            f"turn_mask row {bad} is {turn_mask[bad].tolist()}: existing turns must come first "
            "(tool call t of a trajectory in column t); build it with pad_turn_scores."
        )
    return n_turns


def discounted_weights(n_columns: int, lam: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[T]`` weights ``lam ** t``, t = 0 .. T - 1: earlier tool calls weigh more."""
    return lam ** torch.arange(n_columns, dtype=dtype)


def trajectory_semantic_score(
    turn_scores: torch.Tensor, turn_mask: torch.Tensor, *, lam: float = 0.95, aggregate: Aggregate = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``S_i``, the lambda-discounted aggregate of trajectory ``i``'s turn scores.

    - ``"mean"``: ``S_i = sum_t lam^t s_it / sum_t lam^t`` (a weighted mean: stays on the cosine scale and
      does not grow with the number of calls, so zooming more is not rewarded by itself);
    - ``"sum"``: ``S_i = sum_t lam^t s_it`` (more calls, more credit, positive or negative);
    - ``"min"``: ``S_i = min_t s_it`` (the worst zoom decides; ``lam`` is unused).

    Sums run over ``t = 0 .. T_i - 1``. Computed in float64.

    Returns:
        ``(S [B] float64, has_turn [B] bool)``; ``S_i = 0`` where ``T_i = 0`` (impute it with
        :func:`impute_no_tool`).
    """
    check_turns(turn_scores, turn_mask)
    scores = turn_scores.double()
    exists = turn_mask.bool()
    has_turn = exists.any(dim=1)
    weights = discounted_weights(scores.shape[1], lam).unsqueeze(0) * exists
    if aggregate == "mean":
        total = (weights * scores).sum(dim=1)
        s = torch.where(has_turn, total / weights.sum(dim=1).clamp_min(1e-300), torch.zeros_like(total))
    elif aggregate == "sum":
        s = (weights * scores).sum(dim=1)
    elif aggregate == "min":
        s = torch.where(exists, scores, torch.full_like(scores, float("inf"))).min(dim=1).values
        s = torch.where(has_turn, s, torch.zeros_like(s))
    else:
        raise ValueError(f"aggregate={aggregate!r} is not one of 'mean', 'sum', 'min'.")
    return s, has_turn


def impute_no_tool(
    semantic: torch.Tensor,
    has_turn: torch.Tensor,
    groups: list[torch.Tensor],
    no_tool_score: float | str = "group_min",
) -> torch.Tensor:
    """Give trajectories without any tool call a semantic score.

    Args:
        semantic: ``[B]`` ``S_i`` (ignored where ``has_turn`` is False).
        has_turn: ``[B]`` bool, ``T_i > 0``.
        groups: member positions per group (:func:`mapo.core.grouping.group_members`).
        no_tool_score: ``"group_min"`` (default): the minimum ``S`` over the group's members that did call a
            tool, so not zooming is never better than the worst zoom; when nobody in the group called a tool
            every member gets the same value and the semantic term is 0 (neutral). A float: that fixed score
            (e.g. ``-1.0`` to punish answering without looking, on the cosine scale).

    Returns:
        ``[B]`` semantic scores for every trajectory.
    """
    out = semantic.clone()
    if isinstance(no_tool_score, str):
        if no_tool_score != "group_min":
            raise ValueError(f"no_tool_score={no_tool_score!r}: use 'group_min' or a float such as -1.0.")
        for members in groups:
            called = has_turn[members]
            fill = semantic[members][called].min() if called.any() else torch.zeros((), dtype=semantic.dtype)
            out[members[~called]] = fill
        return out
    return torch.where(has_turn, out, torch.full_like(out, float(no_tool_score)))


def semantic_returns(
    turn_scores: torch.Tensor, turn_mask: torch.Tensor, *, lam: float = 0.95, aggregate: Aggregate = "mean"
) -> torch.Tensor:
    """``G_it``: the ``aggregate`` of trajectory ``i``'s scores from call ``t`` on, discounted from ``t``.

    - ``"mean"``: ``G_it = sum_{k=t}^{T_i-1} lam^(k-t) s_ik / sum_{k=t}^{T_i-1} lam^(k-t)``;
    - ``"sum"``: ``G_it = sum_{k=t}^{T_i-1} lam^(k-t) s_ik`` (the discounted return);
    - ``"min"``: ``G_it = min_{k>=t} s_ik``.

    ``G_i0`` equals :func:`trajectory_semantic_score`'s ``S_i`` for the same ``aggregate``. The mean form
    keeps every position on the same scale: with a sum, an early call collects more terms than a late one,
    so pooled normalisation would favour early calls whenever scores are positive, even when all are equal.

    Returns:
        ``[B, T]`` float64, 0 where ``turn_mask`` is 0.
    """
    check_turns(turn_scores, turn_mask)
    exists = turn_mask.bool()
    scores = turn_scores.double() * exists
    returns = torch.zeros_like(scores)
    running = torch.zeros(scores.shape[0], dtype=scores.dtype)
    weight = torch.zeros_like(running)
    worst = torch.full_like(running, float("inf"))
    for t in range(scores.shape[1] - 1, -1, -1):
        here = exists[:, t]
        running = scores[:, t] + lam * running
        weight = here.double() + lam * weight
        worst = torch.where(here, torch.minimum(worst, scores[:, t]), worst)
        if aggregate == "mean":
            returns[:, t] = running / weight.clamp_min(1e-300)
        elif aggregate == "sum":
            returns[:, t] = running
        elif aggregate == "min":
            returns[:, t] = worst
        else:
            raise ValueError(f"aggregate={aggregate!r} is not one of 'mean', 'sum', 'min'.")
    return torch.where(exists, returns, torch.zeros_like(returns))


__all__ = [
    "check_turns",
    "discounted_weights",
    "impute_no_tool",
    "pad_turn_scores",
    "semantic_returns",
    "trajectory_semantic_score",
]
