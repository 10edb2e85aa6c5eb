"""How MAPO normalises its semantic term within a group: the ``semantic_norm`` option of the estimators.

With ``R`` the outcome reward and ``S`` the trajectory semantic score of each member of a group (shapes
``[B]``, groups as :func:`mapo.core.grouping.group_members` returns them):

- ``"std"`` (default, the paper's form): ``(S - mean_G S) / (std_G S + epsilon)``: unit variance in every group,
  however small the differences in ``S`` are (a group of equal outcomes still gets +-1 advantages from label
  wording alone);
- ``"center"``: ``S - mean_G S``: the verifier's own scale (cosine differences, typically a few hundredths), so
  ``beta`` weighs the semantic term against the unit-variance outcome term in cosine units;
- ``"std_floor"``: ``(S - mean_G S) / (max(std_G S, semantic_std_floor) + epsilon)``: unit variance only where
  the semantic scores really differ;
- ``"outcome_varies"``: ``"std"`` in groups whose outcome varies, 0 where every member has the same ``R``
  (MAPO then adds nothing where GRPO has no gradient: the semantic term only re-ranks within an outcome
  contrast);
- ``"joint"``: no separate term: the estimator normalises ``R + beta * S`` as one reward (see
  :func:`joint_reward`).

Every form is 0 for a one-member group and for a group of equal ``S``, and zero-mean within each group
(``"std_floor"`` and ``"center"`` exactly, up to rounding).
"""

from __future__ import annotations

from typing import Literal

import torch

from mapo.core.grouping import group_normalize

SemanticNorm = Literal["std", "center", "std_floor", "outcome_varies", "joint"]
SEMANTIC_NORMS: tuple[str, ...] = ("std", "center", "std_floor", "outcome_varies", "joint")


def check_semantic_norm(semantic_norm: str) -> None:
    if semantic_norm not in SEMANTIC_NORMS:
        raise ValueError(f"semantic_norm={semantic_norm!r} is not one of {', '.join(SEMANTIC_NORMS)}.")


def constant_outcome(outcome: torch.Tensor, groups: list[torch.Tensor]) -> torch.Tensor:
    """``[B]`` bool: True for members of a group whose outcomes are all equal (or of a one-member group)."""
    out = torch.zeros(outcome.shape[0], dtype=torch.bool)
    for members in groups:
        values = outcome[members]
        out[members] = bool((values == values[0]).all())
    return out


def normalize_semantic(semantic: torch.Tensor, outcome: torch.Tensor, groups: list[torch.Tensor], *,
                       semantic_norm: SemanticNorm = "std", semantic_std_floor: float = 0.1,
                       epsilon: float = 1e-6) -> torch.Tensor:
    """``[B]`` the normalised semantic term (any form but ``"joint"``, which has no separate term)."""
    check_semantic_norm(semantic_norm)
    if semantic_norm == "joint":
        raise ValueError("semantic_norm='joint' normalises R + beta * S together; use joint_reward()")
    if semantic_norm == "center":
        return group_normalize(semantic, groups, epsilon=epsilon, norm_by_std=False, singleton="zero")
    floor = semantic_std_floor if semantic_norm == "std_floor" else 0.0
    normed = group_normalize(semantic, groups, epsilon=epsilon, singleton="zero", std_floor=floor)
    if semantic_norm == "outcome_varies":
        normed = torch.where(constant_outcome(outcome, groups), torch.zeros_like(normed), normed)
    return normed


def joint_reward(outcome: torch.Tensor, semantic: torch.Tensor, beta: float) -> torch.Tensor:
    """``R + beta * S`` in ``R``'s dtype (``beta = 0`` returns ``R``'s values exactly, so the joint form
    reduces to GRPO bit for bit)."""
    return outcome + (beta * semantic).to(outcome.dtype)
