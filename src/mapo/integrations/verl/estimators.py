"""``mapo`` and ``mapo_turn`` as verl advantage estimators (``algorithm.adv_estimator=mapo``).

verl calls a registered estimator as ``fn(token_level_rewards=[B, L], response_mask=[B, L], config=AlgoConfig,
index=uid np.ndarray[B])``. MAPO also needs the per-call alignment scores, which verl does not pass: mapo's
task runner (:mod:`mapo.integrations.verl.advantage_hook`) reads them from the batch and adds
``turn_scores``, ``turn_mask``, ``token_turn`` and the MAPO parameters as keyword arguments. The math is
mapo.core's, unchanged: these functions only translate verl's call into mapo's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from mapo.core.advantages import get_advantage
from mapo.core.params import MAPOParams

#: Names registered with verl; the same names as in mapo.core's registry.
ESTIMATORS = ("mapo", "mapo_turn")

#: Keyword arguments verl's ``compute_advantage`` passes to some estimators that mapo's do not use.
VERL_EXTRAS = frozenset({"reward_baselines", "non_tensor_batch", "batch", "sum_pi_squared"})


def _mapping(section: Any) -> dict[str, Any]:
    if section is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(section, DictConfig):
            return dict(OmegaConf.to_container(section, resolve=True))
    except ImportError:  # pragma: no cover - verl depends on omegaconf
        pass
    return dict(section.items()) if hasattr(section, "items") else dict(section)


def mapo_params(config: Any | None) -> MAPOParams:
    """MAPO's typed parameters from a verl config: its ``mapo:`` section (:class:`mapo.core.params.MAPOParams`
    fields; an unknown key is an error naming it), with ``norm_by_std`` taken from verl's
    ``algorithm.norm_adv_by_std_in_grpo`` unless the section sets it (a contradiction is an error).

    ``config``: the whole launch config (with ``mapo`` and ``algorithm``), or None for the defaults.
    """
    get = config.get if config is not None and hasattr(config, "get") else (lambda key, default=None: default)
    values = _mapping(get("mapo", None))
    algorithm = get("algorithm", None)
    verl_flag = algorithm.get("norm_adv_by_std_in_grpo", None) if hasattr(algorithm, "get") else None
    if verl_flag is not None:
        if "norm_by_std" in values and bool(values["norm_by_std"]) != bool(verl_flag):
            raise ValueError(f"mapo.norm_by_std={values['norm_by_std']} contradicts algorithm.norm_adv_by_std_in_grpo="
                             f"{verl_flag}; set only algorithm.norm_adv_by_std_in_grpo")
        values.setdefault("norm_by_std", bool(verl_flag))
    try:
        params = MAPOParams.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"mapo.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{problems} (known keys: {', '.join(MAPOParams.model_fields)})") from None
    if params.semantic_claim != "label":  # the zoom tool sees the call, not the task's target names
        raise ValueError(f"mapo.semantic_claim={params.semantic_claim}: under verl the zoom tool scores each call's "
                         "label only; remove the key (or set label), or use `mapo train` for referent scoring")
    return params


def _call_core(name: str, token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
               index: np.ndarray | None, config: Any, kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    if kwargs.get("turn_scores") is None:
        raise ValueError(
            f"algorithm.adv_estimator={name} needs the per-call alignment scores, which plain verl does not pass "
            "to estimators. Launch with `python -m mapo.integrations.verl.main_ppo` (mapo's task runner adds "
            "them from the rollout batch), or call this function with turn_scores/turn_mask/token_turn.")
    if index is None:
        raise ValueError(f"algorithm.adv_estimator={name} needs the group index (verl's non_tensor_batch['uid'])")
    kwargs = {k: v for k, v in kwargs.items() if k not in VERL_EXTRAS}
    if config is not None and hasattr(config, "get"):
        kwargs.setdefault("norm_by_std", bool(config.get("norm_adv_by_std_in_grpo", True)))
    # mapo.core's estimators take only their own options: a misspelt one is a TypeError that names it
    return get_advantage(name)(token_level_rewards, response_mask, np.asarray(index), **kwargs)


def compute_mapo_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                           index: np.ndarray | None = None, config: Any = None, **kwargs: Any
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """verl signature of mapo.core's ``mapo``: ``(advantages [B, L], returns [B, L])``.

    ``kwargs``: ``turn_scores [B, T]``, ``turn_mask [B, T]`` (required) and MAPO parameters
    (:class:`mapo.core.params.MAPOParams` fields the estimator takes); verl's extra kwargs (``VERL_EXTRAS``,
    e.g. ``reward_baselines``) are dropped, any other unknown keyword is an error.
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
