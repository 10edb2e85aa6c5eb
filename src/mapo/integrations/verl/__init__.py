"""MAPO inside verl (Ray, FSDP, vLLM/SGLang), without a fork of verl. Installed with the ``verl`` extra.

Importing this package registers ``mapo`` and ``mapo_turn`` with verl's ``register_adv_est``. The pieces:

- :mod:`.estimators` - the estimators in verl's signature (mapo.core's math) and :func:`mapo_params`, which
  reads the ``mapo:`` section into :class:`mapo.core.params.MAPOParams`;
- :mod:`.zoom_tool` - ``image_zoom_in_tool`` as a verl ``BaseTool`` that crops and scores the label;
- :mod:`.agent_loop` - ``mapo_tool_agent``, a ``ToolAgentLoop`` that carries each call's score in
  ``extra_fields["mapo_turns"]`` (-> ``non_tensor_batch``);
- :mod:`.advantage_hook` - hands those scores to the estimator inside verl's ``compute_advantage``;
- :mod:`.task_runner` / :mod:`.main_ppo` - ``python -m mapo.integrations.verl.main_ppo``: verl's entry point
  with mapo's task runner (registers the estimators and installs the hook in the trainer's process);
- :mod:`.reward` - ``compute_score`` for multiple-choice answers (mapo.rewards).

See docs/verl.md for the launch commands.
"""

from mapo.core.params import MAPOParams
from mapo.integrations.verl.estimators import (
    ESTIMATORS,
    compute_mapo_advantage,
    compute_mapo_turn_advantage,
    mapo_params,
    register_estimators,
)

register_estimators()

__all__ = [
    "ESTIMATORS",
    "MAPOParams",
    "compute_mapo_advantage",
    "compute_mapo_turn_advantage",
    "mapo_params",
    "register_estimators",
]
