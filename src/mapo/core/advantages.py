"""Advantage estimators, chosen by name from a registry: ``grpo``, ``rloo``, ``mapo``, ``mapo_turn``.

Every estimator has one signature, so one call site serves all of them::

    fn(token_level_rewards [B, L], response_mask [B, L], index np.ndarray[B], *,
       turn_scores [B, T] | None = None, turn_mask [B, T] | None = None, token_turn [B, L] | None = None,
       **params) -> (advantages [B, L], returns [B, L])

- ``token_level_rewards``: outcome reward per response token; an estimator uses its row sum ``R_i``
  (usually the reward sits on the last generated token).
- ``response_mask``: 1 on generated tokens (the loss mask). Advantages are 0 wherever it is 0.
- ``index``: group id per trajectory (the rollouts of one prompt share it; any hashable).
- ``turn_scores[i, t]``: verifier cosine of trajectory ``i``'s ``t``-th *tool call* (its label vs its crop);
  ``turn_mask[i, t]`` = 1 for ``t < T_i``, the number of tool calls ``i`` made (build both with
  :func:`mapo.core.semantic.pad_turn_scores`).
- ``token_turn[i, l]``: which tool call response token ``l`` belongs to. The trainer maps each generated
  token to the *tool-call index* of the assistant turn that produced it: ``t`` if that turn issued tool call
  number ``t`` (0-based, counting only turns that issued a call), ``T_i`` for the final-answer turn and for
  turns that issued no call; ``-1`` for tokens the model did not generate (prompt, tool observations).
- ``params``: estimator options (``beta``, ``lam``, ``no_tool_score``, ``norm_by_std``, ``epsilon``, ...),
  typed with their defaults in :class:`mapo.core.params.MAPOParams`; an estimator takes only the options it
  names, and an unknown name is a ``TypeError`` naming it. Pass one ``MAPOParams`` to any estimator with
  ``**params.estimator_kwargs(fn)``.

Advantages are computed without gradient and have the dtype of ``token_level_rewards``; they are never NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import torch

from mapo.core.grouping import Singleton, group_members, group_normalize, pooled_group_normalize
from mapo.core.params import DEFAULTS
from mapo.core.semantic import (
    Aggregate,
    check_turns,
    impute_no_tool,
    semantic_returns,
    trajectory_semantic_score,
)
from mapo.core.semantic_norm import (
    SemanticNorm,
    check_semantic_norm,
    constant_outcome,
    joint_reward,
    normalize_semantic,
)


class AdvantageFn(Protocol):
    def __call__(
        self,
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: np.ndarray,
        *,
        turn_scores: torch.Tensor | None = None,
        turn_mask: torch.Tensor | None = None,
        token_turn: torch.Tensor | None = None,
        **params: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


_REGISTRY: dict[str, AdvantageFn] = {}


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: make ``fn`` available as ``get_advantage(name)``.

    Names are unique; re-registering the same function (same module and qualified name, e.g. a re-run
    notebook cell or a re-imported module) replaces the entry instead of failing.
    """

    def decorate(fn: AdvantageFn) -> AdvantageFn:
        known = _REGISTRY.get(name)
        if known is not None and _qualified(known) != _qualified(fn):
            raise ValueError(
                f"advantage estimator {name!r} is already registered as {_qualified(known)}; pick another name."
            )
        _REGISTRY[name] = fn
        return fn

    return decorate


def _qualified(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def get_advantage(name: str) -> AdvantageFn:
    """The estimator registered as ``name``; a ``KeyError`` lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown advantage estimator {name!r}; registered: {', '.join(list_advantages())}. "
            "Register a new one with @mapo.core.advantages.register_advantage(name)."
        ) from None


def list_advantages() -> list[str]:
    """Registered estimator names, sorted."""
    return sorted(_REGISTRY)


def _check_batch(token_level_rewards: torch.Tensor, response_mask: torch.Tensor) -> None:
    if token_level_rewards.dim() != 2 or token_level_rewards.shape != response_mask.shape:
        raise ValueError(
            f"token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must both be [B, L]."
        )


def outcome_advantage(
    token_level_rewards: torch.Tensor,
    index: np.ndarray,
    *,
    epsilon: float = DEFAULTS.epsilon,
    norm_by_std: bool = DEFAULTS.norm_by_std,
    singleton: Singleton = DEFAULTS.singleton,
    zero_ties: bool = DEFAULTS.zero_ties,
) -> torch.Tensor:
    """``norm_G(R_i)`` with ``R_i = sum_l token_level_rewards[i, l]``: ``[B]``, the GRPO sequence advantage."""
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        groups = group_members(index, scores.shape[0])
        return group_normalize(
            scores, groups, epsilon=epsilon, norm_by_std=norm_by_std, singleton=singleton, zero_ties=zero_ties
        )


@register_advantage("grpo")
def grpo(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    *,
    turn_scores: torch.Tensor | None = None,
    turn_mask: torch.Tensor | None = None,
    token_turn: torch.Tensor | None = None,
    epsilon: float = DEFAULTS.epsilon,
    norm_by_std: bool = DEFAULTS.norm_by_std,
    singleton: Singleton = DEFAULTS.singleton,
    zero_ties: bool = DEFAULTS.zero_ties,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO outcome advantage, verl's ``compute_grpo_outcome_advantage`` conventions.

    ``A_il = (R_i - mean_G R) / (std_G R + epsilon) * response_mask_il``, ``R_i`` the row sum of
    ``token_level_rewards``, ``mean_G`` / ``std_G`` (unbiased) over trajectory ``i``'s group.

    Args:
        epsilon: added to the group std (verl: 1e-6).
        turn_scores, turn_mask, token_turn: accepted for the common signature and ignored.
        norm_by_std: ``False`` = Dr.GRPO (mean-centred only; verl's ``norm_adv_by_std_in_grpo``). Default True.
        singleton: one-member group: ``"raw"`` (verl: mean 0, std 1, so ``A = R / (1 + epsilon)``) or ``"zero"``.
        zero_ties: a group whose ``R`` are all equal gets exactly 0 (verl returns rounding noise amplified
            by ``1 / epsilon`` there); ``False`` reproduces verl bit for bit on every input.

    Returns:
        ``(advantages [B, L], returns [B, L])``, equal tensors, as in verl.
    """
    _check_batch(token_level_rewards, response_mask)
    seq = outcome_advantage(
        token_level_rewards,
        index,
        epsilon=epsilon,
        norm_by_std=norm_by_std,
        singleton=singleton,
        zero_ties=zero_ties,
    )
    adv = seq.unsqueeze(-1) * response_mask
    return adv, adv


@register_advantage("rloo")
def rloo(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    *,
    turn_scores: torch.Tensor | None = None,
    turn_mask: torch.Tensor | None = None,
    token_turn: torch.Tensor | None = None,
    singleton: Singleton = DEFAULTS.singleton,
    zero_ties: bool = DEFAULTS.zero_ties,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE leave-one-out (arXiv 2402.14740): baseline = mean reward of the *other* group members.

    ``A_i = R_i - (sum_{j in G, j != i} R_j) / (n - 1) = n / (n - 1) * (R_i - mean_G R)``, computed as verl's
    ``compute_rloo_outcome_advantage`` does. Not std-normalised (its scale is the reward's).

    Args:
        turn_scores, turn_mask, token_turn: accepted for the common signature and ignored.
        singleton: one-member group: ``"raw"`` (verl: ``A = R``) or ``"zero"``.
        zero_ties: a group whose ``R`` are all equal gets exactly 0 instead of one-ulp rounding noise.

    Returns:
        ``(advantages [B, L], returns [B, L])``, equal tensors.
    """
    _check_batch(token_level_rewards, response_mask)
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        out = scores.clone()
        for members in group_members(index, scores.shape[0]):
            n = len(members)
            values = scores[members]
            if n == 1:
                out[members] = values if singleton == "raw" else torch.zeros_like(values)
            elif zero_ties and bool((values == values[0]).all()):
                out[members] = 0.0
            else:
                out[members] = values * n / (n - 1) - torch.mean(values) * n / (n - 1)
        adv = out.unsqueeze(-1) * response_mask
    return adv, adv


def _require_turns(name: str, turn_scores: torch.Tensor | None, turn_mask: torch.Tensor | None, batch: int):
    if turn_scores is None:
        raise ValueError(
            f"the {name!r} estimator needs turn_scores [B, T] (the verifier's score of each tool call) and "
            "turn_mask [B, T]; build them with mapo.core.semantic.pad_turn_scores(scores_per_trajectory), "
            "or use adv_estimator 'grpo' for outcome-only training."
        )
    if turn_mask is None:
        turn_mask = torch.ones_like(turn_scores)
    if turn_scores.dim() != 2 or turn_scores.shape[0] != batch:
        raise ValueError(f"turn_scores has shape {tuple(turn_scores.shape)}; expected [B={batch}, T].")
    return turn_scores, turn_mask


def semantic_scores(
    turn_scores: torch.Tensor,
    turn_mask: torch.Tensor,
    groups: list[torch.Tensor],
    *,
    lam: float = 0.95,
    aggregate: Aggregate = "mean",
    no_tool_score: float | str = "group_min",
) -> torch.Tensor:
    """``S_i``: ``[B]`` float64, the trajectory semantic score with no-tool trajectories imputed."""
    semantic, has_turn = trajectory_semantic_score(turn_scores, turn_mask, lam=lam, aggregate=aggregate)
    return impute_no_tool(semantic, has_turn, groups, no_tool_score)


def semantic_advantage(
    turn_scores: torch.Tensor,
    turn_mask: torch.Tensor,
    groups: list[torch.Tensor],
    *,
    lam: float = DEFAULTS.lam,
    aggregate: Aggregate = DEFAULTS.aggregate,
    no_tool_score: float | str = DEFAULTS.no_tool_score,
    epsilon: float = DEFAULTS.epsilon,
    outcome: torch.Tensor | None = None,
    semantic_norm: SemanticNorm = DEFAULTS.semantic_norm,
    semantic_std_floor: float = DEFAULTS.semantic_std_floor,
) -> torch.Tensor:
    """``norm_G(S_i)``: ``[B]`` float64, the group-normalised trajectory semantic score.

    ``semantic_norm`` picks the form (:mod:`mapo.core.semantic_norm`; default ``"std"``: unit variance per
    group, so ``beta`` means the same for any verifier); ``outcome`` ``[B]`` (the rewards ``R``) is needed by
    ``"outcome_varies"``. A group of one, or a group whose ``S`` are all equal, gets 0.
    """
    semantic = semantic_scores(turn_scores, turn_mask, groups, lam=lam, aggregate=aggregate,
                               no_tool_score=no_tool_score)
    if outcome is None:
        if semantic_norm == "outcome_varies":
            raise ValueError("semantic_norm='outcome_varies' needs the outcome rewards (outcome=[B])")
        outcome = torch.zeros_like(semantic)
    return normalize_semantic(semantic, outcome, groups, semantic_norm=semantic_norm,
                              semantic_std_floor=semantic_std_floor, epsilon=epsilon)


@register_advantage("mapo")
def mapo(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    *,
    turn_scores: torch.Tensor | None = None,
    turn_mask: torch.Tensor | None = None,
    token_turn: torch.Tensor | None = None,
    beta: float = DEFAULTS.beta,
    lam: float = DEFAULTS.lam,
    aggregate: Aggregate = DEFAULTS.aggregate,
    no_tool_score: float | str = DEFAULTS.no_tool_score,
    epsilon: float = DEFAULTS.epsilon,
    norm_by_std: bool = DEFAULTS.norm_by_std,
    singleton: Singleton = DEFAULTS.singleton,
    zero_ties: bool = DEFAULTS.zero_ties,
    semantic_norm: SemanticNorm = DEFAULTS.semantic_norm,
    semantic_std_floor: float = DEFAULTS.semantic_std_floor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAPO: outcome advantage plus the group-normalised semantic alignment of the trajectory's zooms.

    ``A_il = [ norm_G(R_i) + beta * norm_G(S_i) ] * response_mask_il`` with

    - ``norm_G(R_i)`` exactly :func:`grpo`'s sequence advantage (same ``epsilon``, ``norm_by_std``,
      ``singleton``, ``zero_ties``), so ``beta = 0`` gives GRPO bit for bit;
    - ``S_i`` = ``aggregate`` of ``s_i0 .. s_i(T_i-1)`` with weights ``lam ** t``; default the discounted
      mean ``sum_t lam^t s_it / sum_t lam^t`` (see :func:`mapo.core.semantic.trajectory_semantic_score`);
    - a trajectory with no tool call (``T_i = 0``) gets ``S_i = no_tool_score``: by default ``"group_min"``,
      the lowest ``S`` among group members that did call a tool (not zooming never beats the worst zoom;
      neutral when nobody in the group zoomed); or a fixed float;
    - ``norm_G(S)`` is std-normalised by default and is 0 for a one-member group or a group of equal ``S``.

    Args:
        token_turn: accepted for the common signature and ignored (see :func:`mapo_turn`).
        beta: weight of the semantic term (default 0.4, as reported for the paper).
        lam: per-call discount (default 0.95): earlier zooms weigh more, their errors carry into later turns.
        semantic_norm: how ``S`` is normalised (:mod:`mapo.core.semantic_norm`): ``"std"`` (default),
            ``"center"``, ``"std_floor"``, ``"outcome_varies"``, or ``"joint"``: ``A = norm_G(R + beta * S)``
            with GRPO's normalisation options. ``beta = 0`` gives GRPO bit for bit in every form.
        semantic_std_floor: the floor of ``"std_floor"`` (in the verifier's cosine units).

    Returns:
        ``(advantages [B, L], returns [B, L])``, equal tensors.
    """
    _check_batch(token_level_rewards, response_mask)
    turn_scores, turn_mask = _require_turns("mapo", turn_scores, turn_mask, token_level_rewards.shape[0])
    check_semantic_norm(semantic_norm)
    with torch.no_grad():
        groups = group_members(index, token_level_rewards.shape[0])
        if semantic_norm == "joint":
            semantic = semantic_scores(turn_scores, turn_mask, groups, lam=lam, aggregate=aggregate,
                                       no_tool_score=no_tool_score)
            seq = group_normalize(joint_reward(token_level_rewards.sum(dim=-1), semantic, beta), groups,
                                  epsilon=epsilon, norm_by_std=norm_by_std,
                                  singleton=singleton, zero_ties=zero_ties)
            adv = seq.unsqueeze(-1) * response_mask
            return adv, adv
        outcome = outcome_advantage(
            token_level_rewards,
            index,
            epsilon=epsilon,
            norm_by_std=norm_by_std,
            singleton=singleton,
            zero_ties=zero_ties,
        )
        semantic = semantic_advantage(
            turn_scores,
            turn_mask,
            groups,
            lam=lam,
            aggregate=aggregate,
            no_tool_score=no_tool_score,
            epsilon=epsilon,
            outcome=token_level_rewards.sum(dim=-1),
            semantic_norm=semantic_norm,
            semantic_std_floor=semantic_std_floor,
        )
        seq = outcome + beta * semantic.to(outcome.dtype)
        adv = seq.unsqueeze(-1) * response_mask
    return adv, adv


@register_advantage("mapo_turn")
def mapo_turn(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    *,
    turn_scores: torch.Tensor | None = None,
    turn_mask: torch.Tensor | None = None,
    token_turn: torch.Tensor | None = None,
    beta: float = DEFAULTS.beta,
    lam: float = DEFAULTS.lam,
    aggregate: Aggregate = DEFAULTS.aggregate,
    no_tool_score: float | str = DEFAULTS.no_tool_score,
    answer_credit: Literal["trajectory", "outcome"] = DEFAULTS.answer_credit,
    epsilon: float = DEFAULTS.epsilon,
    norm_by_std: bool = DEFAULTS.norm_by_std,
    singleton: Singleton = DEFAULTS.singleton,
    zero_ties: bool = DEFAULTS.zero_ties,
    semantic_norm: SemanticNorm = DEFAULTS.semantic_norm,
    semantic_std_floor: float = DEFAULTS.semantic_std_floor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn-level MAPO: each tool call's tokens get the semantic credit of that call and the calls after it.

    For response token ``l`` of trajectory ``i`` with ``t = token_turn[i, l]``::

        A_il = norm_G(R_i) + beta * C_il                      (times response_mask_il)
        C_il = P_it                 if 0 <= t < T_i           (tokens of the turn that made tool call t)
        C_il = norm_G(S_i)          if t == T_i and answer_credit == "trajectory"   (answer / no-call turns)
        C_il = 0                    if t == T_i and answer_credit == "outcome", or t == -1
        G_it = sum_{k=t}^{T_i-1} lam^(k-t) s_ik / sum_{k=t}^{T_i-1} lam^(k-t)   (aggregate="mean")
        G_it = sum_{k=t}^{T_i-1} lam^(k-t) s_ik                                  (aggregate="sum")
        G_it = min_{t<=k<T_i} s_ik                                               (aggregate="min")
        P_it = (G_it - mean_pool G) / (std_pool G + epsilon), pool = {(j, k): j in group(i), k < T_j}

    ``G_it`` is the lambda-discounted semantic return from call ``t`` onwards (a call is credited for its own
    alignment and, discounted, for the alignment of the zooms it led to); ``G_i0 = S_i``. The default
    "mean" form keeps all positions on one scale, so equal scores give equal credit (with "sum" early calls
    collect more terms and win the pooled comparison whenever scores are positive).
    ``norm_G(R_i)`` and ``norm_G(S_i)`` are exactly :func:`mapo`'s (``S_i`` from ``aggregate`` and
    ``no_tool_score``). The pool's std is unbiased; a pool of one pair, a group of one trajectory, or
    a pool of equal returns gives ``P = 0``.
    When every member of a group made exactly one call (``G_i0 = s_i0 = S_i``) this equals :func:`mapo`
    on every token; with mixed call counts the pools differ (no-call members have no pair in the pool).

    Args:
        token_turn: ``[B, L]`` tool-call index per response token (see the module docstring); required.
        answer_credit: what the final-answer turn (and turns without a call) get besides the outcome:
            ``"trajectory"`` (default) the trajectory's ``norm_G(S_i)`` (the answer rests on every zoom),
            ``"outcome"`` nothing.
        semantic_norm: as :func:`mapo`, applied to the pooled ``P`` and to ``norm_G(S_i)`` alike (``"center"``:
            centred on the pool's mean; ``"std_floor"``: ``max(std_pool, semantic_std_floor)``;
            ``"outcome_varies"``: 0 in groups of equal outcomes). ``"joint"`` is trajectory-level only: use
            :func:`mapo`.

    Returns:
        ``(advantages [B, L], returns [B, L])``, equal tensors.
    """
    _check_batch(token_level_rewards, response_mask)
    batch = token_level_rewards.shape[0]
    turn_scores, turn_mask = _require_turns("mapo_turn", turn_scores, turn_mask, batch)
    if token_turn is None or token_turn.shape != token_level_rewards.shape:
        raise ValueError(
            "the 'mapo_turn' estimator needs token_turn [B, L] (tool-call index of each response token, T_i "
            "for answer tokens, -1 for non-generated ones); got "
            f"{None if token_turn is None else tuple(token_turn.shape)}. Use 'mapo' for trajectory-level credit."
        )
    if answer_credit not in ("trajectory", "outcome"):
        raise ValueError(f"answer_credit={answer_credit!r} is not one of 'trajectory', 'outcome'.")
    check_semantic_norm(semantic_norm)
    if semantic_norm == "joint":
        raise ValueError("semantic_norm='joint' normalises R + beta * S per trajectory; it has no turn-level "
                         "form: use the 'mapo' estimator, or another semantic_norm with 'mapo_turn'.")
    with torch.no_grad():
        n_turns = check_turns(turn_scores, turn_mask)
        token_turn = token_turn.long()
        if bool(((token_turn < -1) | (token_turn > n_turns.unsqueeze(1))).any()):
            raise ValueError(
                "token_turn has values outside [-1, T_i] (T_i = number of tool calls of trajectory i, from "
                "turn_mask); map answer tokens to T_i and non-generated tokens to -1."
            )
        outcome = outcome_advantage(
            token_level_rewards,
            index,
            epsilon=epsilon,
            norm_by_std=norm_by_std,
            singleton=singleton,
            zero_ties=zero_ties,
        )
        groups = group_members(index, batch)
        rewards = token_level_rewards.sum(dim=-1)
        pooled = pooled_group_normalize(
            semantic_returns(turn_scores, turn_mask, lam=lam, aggregate=aggregate),
            turn_mask,
            groups,
            epsilon=epsilon,
            norm_by_std=semantic_norm != "center",
            std_floor=semantic_std_floor if semantic_norm == "std_floor" else 0.0,
        )
        if semantic_norm == "outcome_varies":
            pooled = torch.where(constant_outcome(rewards, groups).unsqueeze(1), torch.zeros_like(pooled), pooled)
        if answer_credit == "trajectory":
            answer = semantic_advantage(
                turn_scores,
                turn_mask,
                groups,
                lam=lam,
                aggregate=aggregate,
                no_tool_score=no_tool_score,
                epsilon=epsilon,
                outcome=rewards,
                semantic_norm=semantic_norm,
                semantic_std_floor=semantic_std_floor,
            )
        else:
            answer = torch.zeros(batch, dtype=torch.float64)
        # Row i's column T_i holds its answer credit: a call index t < T_i reads P_it, t == T_i the answer's.
        table = torch.cat([pooled, torch.zeros(batch, 1, dtype=pooled.dtype)], dim=1)
        table[torch.arange(batch), n_turns] = answer
        # Column T + 1 is a zero for non-generated tokens (-1), so one gather serves every token.
        table = torch.cat([table, torch.zeros(batch, 1, dtype=table.dtype)], dim=1).to(outcome.dtype)
        column = torch.where(token_turn >= 0, token_turn, table.shape[1] - 1)
        credit = torch.gather(table, 1, column)
        adv = (outcome.unsqueeze(-1) + beta * credit) * response_mask
    return adv, adv
