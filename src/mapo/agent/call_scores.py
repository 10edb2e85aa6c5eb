"""The scoring seam: a verifier scores trajectories' tool calls; out come the turn tensors the estimators take.

One path for every consumer: ``mapo train`` (advantages and metrics), ``mapo eval`` (per-turn alignment) and
the verl integration (its zoom tool scores each call with :func:`score_claims`; its advantage hook builds the
tensors with :func:`mapo.core.turns.turn_tensors`, as :func:`score_tool_calls` does here).

What counts as a call is :attr:`mapo.agent.trajectory.Trajectory.tool_calls` (malformed calls included); a call
without a crop has no score here and ``failed_call_score`` in the tensors (:mod:`mapo.core.turns`).

What a crop is scored against is ``semantic_claim`` (:class:`mapo.core.params.MAPOParams`):

- ``"label"`` (default, the paper's): the call's own label (or description). Can be won by re-labelling: a zoom
  that lands on the wrong object scores high when its label describes that object instead of the intent.
- ``"referent"``: the task's target name(s) (``Task.target_names``; the best-matching one when there are
  several), so no wording of the label changes the score; the label for tasks without target names.
- ``"label_and_referent"``: the lower of the two: the label must describe the crop *and* the crop must show
  the referent.
``verifier`` is anything with ``score(texts, images) -> Tensor[N]`` (:class:`mapo.verifier.Verifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from mapo.agent.trajectory import Trajectory
from mapo.core.params import DEFAULTS, ClaimSource
from mapo.core.turns import Call, turn_tensors


def score_claims(verifier: Any, pairs: Sequence[tuple[str, Image.Image | None]]) -> list[float | None]:
    """Verifier cosine of each ``(claim, crop)`` pair, in one batched call; ``None`` where the crop is None
    (the call returned no crop) or ``verifier`` is None."""
    scored = [(text, crop) for text, crop in pairs if crop is not None]
    values = iter(verifier.score([t for t, _ in scored], [c for _, c in scored]).tolist()
                  if scored and verifier is not None else [])
    return [next(values) if crop is not None and verifier is not None else None for _, crop in pairs]


@dataclass
class TurnScores:
    """Scored calls of a batch: ``calls[i]`` = trajectory ``i``'s ``(assistant turn, score | None)`` in call
    order, and the estimator inputs ``turn_scores [B, T]``, ``turn_mask [B, T]``, ``token_turn [B, L]``
    (``L`` = the longest response of the batch, the width the trainer pads every response tensor to)."""

    calls: list[list[Call]]
    tensors: dict[str, torch.Tensor]

    def scores(self) -> list[float]:
        """Scores of the calls that returned a crop (the alignment metric: failed calls are not alignments)."""
        return [s for row in self.calls for _, s in row if s is not None]

    def by_turn(self, i: int) -> dict[int, float]:
        """Trajectory ``i``'s ``{assistant turn: score}`` for the calls that returned a crop."""
        return {turn: s for turn, s in self.calls[i] if s is not None}


def score_tool_calls(trajs: Sequence[Trajectory], verifier: Any,
                     failed_call_score: float = DEFAULTS.failed_call_score,
                     semantic_claim: ClaimSource = DEFAULTS.semantic_claim) -> TurnScores:
    """Score every tool call of ``trajs`` (its ``semantic_claim`` against its crop at original resolution) with
    one verifier call, and build the estimator inputs.

    ``verifier`` None scores nothing (every call's score is None): for an evaluation without a verifier, whose
    records then carry no alignment; the tensors are only meaningful with a verifier."""
    calls = [traj.tool_calls for traj in trajs]
    flat = claim_scores(verifier, [(rec.claim or "", traj.task.target_names, _crop(rec))
                                   for traj, row in zip(trajs, calls) for rec in row], semantic_claim)
    values = iter(flat)
    scored = [[(rec.index, next(values)) for rec in row] for row in calls]
    width = max([len(t.token_turn) for t in trajs] + [1])
    assistant_turn = torch.full((len(trajs), width), -1, dtype=torch.long)
    for i, t in enumerate(trajs):
        assistant_turn[i, : len(t.token_turn)] = t.token_turn
    return TurnScores(scored, turn_tensors(scored, assistant_turn, failed_call_score))


def claim_scores(verifier: Any, calls: Sequence[tuple[str, Sequence[str], Image.Image | None]],
                 semantic_claim: ClaimSource = DEFAULTS.semantic_claim) -> list[float | None]:
    """Score of each ``(label, referent names, crop)`` under ``semantic_claim`` (module docstring), all in one
    verifier call; ``None`` where the crop is None or ``verifier`` is None."""
    if semantic_claim not in ("label", "referent", "label_and_referent"):
        raise ValueError(f"semantic_claim={semantic_claim!r}: use one of label, referent, label_and_referent")

    def texts(label: str, names: Sequence[str]) -> tuple[list[str], list[str]]:
        use_label = semantic_claim != "referent" or not names
        return ([label] if use_label else []), (list(names) if semantic_claim != "label" else [])

    pairs = [(text, crop) for label, names, crop in calls for part in texts(label, names) for text in part]
    values = iter(score_claims(verifier, pairs))
    out: list[float | None] = []
    for label, names, crop in calls:
        own, referents = texts(label, names)
        own_score = [next(values) for _ in own]
        referent_scores = [next(values) for _ in referents]
        if crop is None or verifier is None:
            out.append(None)
        elif not referent_scores:
            out.append(own_score[0])
        elif not own_score:
            out.append(max(referent_scores))
        else:
            out.append(min(own_score[0], max(referent_scores)))
    return out


def _crop(rec) -> Image.Image | None:
    return rec.tool.crop if rec.tool is not None and rec.tool.ok else None


__all__ = ["TurnScores", "claim_scores", "score_claims", "score_tool_calls"]
