"""What mapo relies on in verl 0.9.1 without a supported hook, pinned so that a verl upgrade that changes it
fails here, with the reason, instead of silently training with the wrong advantages.

1. verl hands a registered estimator only rewards, mask, uid and config (``non_tensor_batch`` goes to
   ``gdpo`` alone), so MAPO's per-call scores reach the estimator through mapo's replacement of
   ``ray_trainer.compute_advantage`` (:mod:`mapo.integrations.verl.advantage_hook`), which the v0 trainer
   looks up as a module global at every step.
2. The v1 trainer (``trainer.use_v1=true``) reads ``extra_fields`` only for reward metrics, so the carried
   records never reach its advantage step: MAPO runs on the v0 trainer (``main_ppo_v0.TaskRunner``).
3. The rollout registries are a dict and a register method (``hf`` rollout, :mod:`.hf_rollout`).
The end-to-end tests (test_verl_end_to_end.py) show the whole path working; these fail fast and say why.
"""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("cachetools", reason="verl's trainer modules need the verl extra's cachetools/fastapi/uvicorn")
pytest.importorskip("uvicorn")


def test_compute_advantage_is_the_function_the_hook_replaces():
    from verl.trainer.ppo import ray_trainer

    from mapo.integrations.verl.advantage_hook import compute_advantage_with_turns

    theirs = list(inspect.signature(ray_trainer.compute_advantage).parameters)
    ours = [p for p, v in inspect.signature(compute_advantage_with_turns).parameters.items()
            if v.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert theirs == ours, f"verl's compute_advantage is now {theirs}: update mapo's advantage_hook"
    fit = inspect.getsource(ray_trainer.RayPPOTrainer.fit)
    assert "compute_advantage(" in fit and "ray_trainer" not in fit, (
        "RayPPOTrainer.fit no longer calls the module-level compute_advantage: mapo's hook would not run")


def test_verl_still_withholds_the_batch_from_registered_estimators():
    from verl.trainer.ppo import ray_trainer

    source = inspect.getsource(ray_trainer.compute_advantage)
    gated = source.split('adv_kwargs["non_tensor_batch"]')[0].rsplit("\n", 2)[-2]
    assert "GDPO" in gated or "gdpo" in gated, (
        "verl now passes non_tensor_batch to estimators beyond gdpo: mapo's estimators could read "
        "'mapo_turns' there and the compute_advantage hook could go")


def test_v1_trainer_still_drops_extra_fields_before_the_advantage_step():
    import ast
    import importlib.util
    from pathlib import Path

    # read, not import: the v1 trainer needs TransferQueue, which the verl extra does not install
    path = Path(importlib.util.find_spec("verl").origin).parent / "trainer" / "ppo" / "v1" / "trainer_base.py"
    tree = ast.parse(path.read_text())
    method = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_compute_advantage")
    fields = next(ast.literal_eval(n.value) for n in ast.walk(method) if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", None) == "fields" for t in n.targets))
    assert "uid" in fields and "extra_fields" not in fields, (
        f"verl's v1 advantage step now reads {fields}: check whether 'mapo_turns' reaches it and lift mapo's "
        "trainer.use_v1=false requirement (main_ppo.check_config)")


def test_the_hf_rollout_is_in_both_of_verls_registries():
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class

    from mapo.integrations.verl.hf_rollout import HFRolloutReplica, HFServerAdapter, register_hf_rollout

    register_hf_rollout()
    assert get_rollout_replica_class("hf") is HFRolloutReplica
    assert get_rollout_class("hf", "async") is HFServerAdapter
