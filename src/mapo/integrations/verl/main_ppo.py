"""``python -m mapo.integrations.verl.main_ppo --config-path configs/verl --config-name <name> [overrides]``

verl's ``main_ppo`` with mapo's task runner. verl 0.9.1's v1 trainer (``trainer.use_v1=true``) moves batches
through TransferQueue with a fixed field list that drops ``extra_fields`` before the advantage step, so MAPO
estimators run on the v0 trainer (``trainer.use_v1=false``, set by mapo's launch configs); other estimators
are passed through untouched either way.
"""

from __future__ import annotations

import os
from typing import Any

import hydra

from mapo.integrations.verl.estimators import ESTIMATORS, mapo_params
from mapo.integrations.verl.task_runner import MapoTaskRunner


def check_config(config: Any) -> None:
    """Raise a ``ValueError`` naming the key and the fix when the config cannot carry MAPO's scores."""
    estimator = str(config.algorithm.adv_estimator)
    if estimator not in ESTIMATORS:
        return
    if config.trainer.get("use_v1", False):
        raise ValueError(f"algorithm.adv_estimator={estimator} needs trainer.use_v1=false (verl 0.9.1's v1 "
                         "trainer drops extra_fields before the advantage step); add trainer.use_v1=false")
    rollout = config.actor_rollout_ref.rollout
    if not rollout.multi_turn.get("tool_config_path"):
        raise ValueError("actor_rollout_ref.rollout.multi_turn.tool_config_path is empty: MAPO scores zooms, so "
                         "point it at configs/verl/tools.yaml (mapo's image_zoom_in_tool)")
    if rollout.agent.get("default_agent_loop") != "mapo_tool_agent":
        raise ValueError("actor_rollout_ref.rollout.agent.default_agent_loop must be mapo_tool_agent (it carries "
                         "the per-call scores); also set agent_loop_config_path=configs/verl/agent_loops.yaml")

    mapo_params(config)


def absolutize_config_paths(config: Any, cwd: str | None = None) -> None:
    """Make the tool and agent-loop config paths absolute (relative to ``cwd``, default the launch directory)
    when that file exists, so Ray workers started elsewhere find them; other paths are left as given."""
    from omegaconf import open_dict

    cwd = cwd or os.getcwd()
    rollout = config.actor_rollout_ref.rollout
    with open_dict(config):
        for section, key in ((rollout.multi_turn, "tool_config_path"), (rollout.agent, "agent_loop_config_path")):
            path = section.get(key)
            if path and not os.path.isabs(path) and os.path.exists(os.path.join(cwd, path)):
                section[key] = os.path.abspath(os.path.join(cwd, path))


def run(config: Any) -> None:
    """Validate like verl's ``main`` does, then start Ray with mapo's task runner."""
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    check_config(config)
    absolutize_config_paths(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config),
                    use_critic=need_critic(config))
    run_ppo(config, task_runner_class=MapoTaskRunner)


@hydra.main(config_path="pkg://verl.trainer.config", config_name="ppo_trainer", version_base=None)
def main(config: Any) -> None:
    run(config)


if __name__ == "__main__":
    main()
