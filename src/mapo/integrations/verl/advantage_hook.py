"""The trainer hook that hands the carried alignment scores to the MAPO estimators.

verl's trainer calls ``verl.trainer.ppo.ray_trainer.compute_advantage(data, adv_estimator, ...)``, which
passes an estimator only rewards, mask, uid and the algorithm config. For ``mapo`` / ``mapo_turn`` the hook
reads the per-call records from ``data.non_tensor_batch["mapo_turns"]`` (put there by the agent loop's
``extra_fields``), builds the turn tensors and calls the estimator with them; every other estimator goes to
verl's own function untouched. mapo's task runner installs it in the process where the trainer runs.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import Any

from mapo.core.advantages import get_advantage
from mapo.core.params import MAPOParams
from mapo.integrations.verl.debug_dump import dump_advantages
from mapo.integrations.verl.estimators import ESTIMATORS
from mapo.integrations.verl.turns import TURNS_KEY, turn_tensors

_ORIGINAL_ATTR = "_mapo_original_compute_advantage"


def _name(adv_estimator: Any) -> str:
    return adv_estimator.value if isinstance(adv_estimator, Enum) else str(adv_estimator)


def compute_advantage_with_turns(data, adv_estimator, gamma: float = 1.0, lam: float = 1.0, num_repeat: int = 1,
                                 norm_adv_by_std_in_grpo: bool = True, config: Any = None, *,
                                 params: MAPOParams | None = None, fallback: Callable | None = None):
    """Drop-in for verl's ``compute_advantage`` (same positional signature): fills ``data.batch["advantages"]``
    and ``["returns"]`` ([B, L]) and returns ``data`` (a ``verl.DataProto``).

    Args:
        params: MAPO's parameters (default :class:`mapo.core.params.MAPOParams`; the task runner passes
            :func:`mapo.integrations.verl.estimators.mapo_params` of the launch config).
        fallback: verl's original ``compute_advantage``, used for every non-MAPO estimator.
    """
    name = _name(adv_estimator)
    if name not in ESTIMATORS:
        if fallback is None:
            from verl.trainer.ppo.ray_trainer import compute_advantage as fallback
        data = fallback(data, adv_estimator, gamma=gamma, lam=lam, num_repeat=num_repeat,
                        norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo, config=config)
        dump_advantages(data, name)  # MAPO_VERL_DUMP_DIR (debugging); a no-op when unset
        return data
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    params = params or MAPOParams()
    if TURNS_KEY not in data.non_tensor_batch:
        raise KeyError(
            f"adv_estimator={name}: the batch has no {TURNS_KEY!r} column, so no zoom was scored. Use mapo's "
            "agent loop and zoom tool (actor_rollout_ref.rollout.agent.default_agent_loop=mapo_tool_agent, "
            "multi_turn.tool_config_path=configs/verl/tools.yaml); see docs/verl.md.")
    response_mask = data.batch["response_mask"]
    turns = turn_tensors(list(data.non_tensor_batch[TURNS_KEY]), response_mask, params.failed_call_score)
    if "uid" not in data.non_tensor_batch:
        raise KeyError(f"adv_estimator={name}: the batch has no 'uid' column (verl's group index)")
    advantages, returns = get_adv_estimator_fn(name)(
        token_level_rewards=data.batch["token_level_rewards"],
        response_mask=response_mask,
        index=data.non_tensor_batch["uid"],
        config=config if config is not None else {"norm_adv_by_std_in_grpo": norm_adv_by_std_in_grpo},
        **turns,
        **params.estimator_kwargs(get_advantage(name)),
    )
    data.batch["advantages"] = advantages
    data.batch["returns"] = returns
    dump_advantages(data, name)
    return data


def install_advantage_hook(params: MAPOParams | None = None) -> Callable:
    """Route verl's ``ray_trainer.compute_advantage`` through :func:`compute_advantage_with_turns` in this
    process (the trainer's: mapo's task runner calls it first). Idempotent; returns the installed function."""
    from verl.trainer.ppo import ray_trainer

    original = getattr(ray_trainer, _ORIGINAL_ATTR, ray_trainer.compute_advantage)
    hooked = partial(compute_advantage_with_turns, params=params or MAPOParams(), fallback=original)
    setattr(ray_trainer, _ORIGINAL_ATTR, original)
    ray_trainer.compute_advantage = hooked
    return hooked


def uninstall_advantage_hook() -> None:
    """Restore verl's own ``compute_advantage`` (tests)."""
    from verl.trainer.ppo import ray_trainer

    if hasattr(ray_trainer, _ORIGINAL_ATTR):
        ray_trainer.compute_advantage = getattr(ray_trainer, _ORIGINAL_ATTR)
        delattr(ray_trainer, _ORIGINAL_ATTR)
