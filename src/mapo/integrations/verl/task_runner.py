"""mapo's task runner: verl's own (``main_ppo_v0.TaskRunner``) plus MAPO's set-up in the trainer's process.

verl runs the trainer inside a Ray actor, so registration and the advantage hook must happen there, not in
the launching shell: this actor registers the estimators, installs the hook with the ``mapo:`` section of
the config, then runs verl's task runner unchanged.
"""

from __future__ import annotations

from typing import Any

import ray

from mapo.integrations.verl.advantage_hook import install_advantage_hook
from mapo.integrations.verl.estimators import mapo_params, register_estimators


def prepare_trainer_process(config: Any) -> None:
    """Register ``mapo`` / ``mapo_turn`` and route verl's ``compute_advantage`` through mapo's hook."""
    register_estimators()
    install_advantage_hook(mapo_params(config))


@ray.remote(num_cpus=1)
class MapoTaskRunner:
    """A Ray actor that prepares MAPO, then hands the config to verl's task runner in the same process."""

    def run(self, config: Any) -> None:
        prepare_trainer_process(config)
        from verl.trainer.main_ppo_v0 import TaskRunner

        TaskRunner.__ray_actor_class__().run(config)
