"""``mapo`` and ``mapo_turn`` as verl advantage estimators (``algorithm.adv_estimator=mapo``).

verl calls a registered estimator as ``fn(token_level_rewards=[B, L], response_mask=[B, L], config=AlgoConfig,
index=uid np.ndarray[B])``. MAPO also needs the per-call alignment scores, which verl does not pass: mapo's
task runner (:mod:`mapo.integrations.verl.advantage_hook`) reads them from the batch and adds
``turn_scores``, ``turn_mask``, ``token_turn`` and the MAPO parameters as keyword arguments. The math is
mapo.core's, unchanged: these functions only translate verl's call into mapo's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from mapo.core.advantages import get_advantage

#: Names registered with verl; the same names as in mapo.core's registry.
ESTIMATORS = ("mapo", "mapo_turn")


@dataclass(frozen=True)
class MapoParams:
    """MAPO's knobs inside verl (the ``mapo:`` section of a launch config)."""

    beta: float = 0.4
    """Semantic weight: A = norm_G(R) + beta * norm_G(S)."""
    lam: float = 0.95
    """Discount over tool calls (verl's own ``algorithm.lam`` is GAE's and is not used)."""
    aggregate: str = "mean"
    """How a trajectory's call scores combine into S_i: mean | sum | min (lambda-weighted)."""
    no_tool_score: float | str = "group_min"
    """S_i of a trajectory without tool calls: 'group_min' or a fixed cosine such as -1.0."""
    answer_credit: str = "trajectory"
    """mapo_turn only: semantic credit of answer tokens: 'trajectory' (norm_G(S_i)) or 'outcome' (none)."""
    failed_call_score: float = -1.0
    """Score of a call that returned no crop (bad box, bad JSON, unknown tool): nothing to match its label."""

    @classmethod
    def from_config(cls, section: Any | None) -> MapoParams:
        """From a mapping (an OmegaConf ``mapo:`` section or a dict); unknown keys are an error."""
        if section is None:
            return cls()
        values = dict(section.items()) if hasattr(section, "items") else dict(section)
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"mapo config: unknown key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def estimator_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of mapo.core's estimators (failed_call_score is used upstream)."""
        out = asdict(self)
        out.pop("failed_call_score")
        return out


def _call_core(name: str, token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
               index: np.ndarray | None, config: Any, kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    if kwargs.get("turn_scores") is None:
        raise ValueError(
            f"algorithm.adv_estimator={name} needs the per-call alignment scores, which plain verl does not pass "
            "to estimators. Launch with `python -m mapo.integrations.verl.main_ppo` (mapo's task runner adds "
            "them from the rollout batch), or call this function with turn_scores/turn_mask/token_turn.")
    if index is None:
        raise ValueError(f"algorithm.adv_estimator={name} needs the group index (verl's non_tensor_batch['uid'])")
    norm_by_std = True
    if config is not None and hasattr(config, "get"):
        norm_by_std = bool(config.get("norm_adv_by_std_in_grpo", True))
    kwargs.setdefault("norm_by_std", norm_by_std)
    return get_advantage(name)(token_level_rewards, response_mask, np.asarray(index), **kwargs)


def compute_mapo_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                           index: np.ndarray | None = None, config: Any = None, **kwargs: Any
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """verl signature of mapo.core's ``mapo``: ``(advantages [B, L], returns [B, L])``.

    ``kwargs``: ``turn_scores [B, T]``, ``turn_mask [B, T]`` (required) and MAPO parameters
    (:class:`MapoParams`); verl's extra kwargs (e.g. ``reward_baselines``) are ignored.
    """
    return _call_core("mapo", token_level_rewards, response_mask, index, config, kwargs)


def compute_mapo_turn_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                                index: np.ndarray | None = None, config: Any = None, **kwargs: Any
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """verl signature of mapo.core's ``mapo_turn``; also needs ``token_turn [B, L]`` in ``kwargs``."""
    return _call_core("mapo_turn", token_level_rewards, response_mask, index, config, kwargs)


_FUNCTIONS = {"mapo": compute_mapo_advantage, "mapo_turn": compute_mapo_turn_advantage}


def register_estimators() -> None:
    """Register ``mapo`` and ``mapo_turn`` with verl's ``register_adv_est``. Idempotent: a module re-executed
    by a Ray worker (new function objects, same qualified name) replaces the earlier entry instead of
    tripping verl's duplicate check."""
    from verl.trainer.ppo import core_algos

    for name, fn in _FUNCTIONS.items():
        current = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
        if current is not None and current is not fn and (
                getattr(current, "__module__", None), getattr(current, "__qualname__", None)) == (
                fn.__module__, fn.__qualname__):
            del core_algos.ADV_ESTIMATOR_REGISTRY[name]
        core_algos.register_adv_est(name)(fn)
