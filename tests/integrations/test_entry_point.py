"""``python -m mapo.integrations.verl.main_ppo``: validation, then verl's run_ppo with mapo's task runner, whose
actor prepares MAPO in its own process before running verl's task runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

pytest.importorskip("cachetools", reason="verl's trainer modules need the verl extra's cachetools/fastapi/uvicorn")
pytest.importorskip("uvicorn")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "verl"


def _config():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name="mapo_qwen2_5_vl_7b", overrides=["data.train_files=/d/train.parquet",
                                                                   "data.val_files=/d/val.parquet"])


def test_run_validates_and_hands_mapos_runner_to_verl(monkeypatch):
    import verl.trainer.main_ppo as verl_main

    from mapo.integrations.verl import main_ppo
    from mapo.integrations.verl.task_runner import MapoTaskRunner

    seen = {}
    monkeypatch.setattr(verl_main, "run_ppo", lambda config, task_runner_class: seen.update(
        config=config, runner=task_runner_class))
    monkeypatch.chdir(CONFIGS.parents[1])
    main_ppo.run(_config())
    assert seen["runner"] is MapoTaskRunner
    assert Path(seen["config"].actor_rollout_ref.rollout.multi_turn.tool_config_path).is_absolute()


def test_task_runner_prepares_the_trainer_process_then_runs_verls_runner(monkeypatch):
    import verl.trainer.main_ppo_v0 as v0
    from verl.trainer.ppo import ray_trainer

    from mapo.integrations.verl.advantage_hook import uninstall_advantage_hook
    from mapo.integrations.verl.task_runner import MapoTaskRunner

    ran = []

    class FakeVerlRunner:
        def run(self, config):
            # by now the hook is in place, with the config's MAPO parameters
            ran.append(ray_trainer.compute_advantage.keywords["params"].beta)

    class FakeActor:
        __ray_actor_class__ = FakeVerlRunner

    monkeypatch.setattr(v0, "TaskRunner", FakeActor)
    try:
        cfg = _config()
        cfg.mapo.beta = 0.25
        MapoTaskRunner.__ray_actor_class__().run(cfg)
    finally:
        uninstall_advantage_hook()
    assert ran == [0.25]
