"""The trainer's data path: a DeepEyes-schema parquet streamed with bad rows counted in the metrics
(issue #17.3), and Mini-o3's over-turn masking (``algorithm.mask_turn_cap``, issue #19)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from mapo.data.parquet import task_row, write_rows
from mapo.train.config import TrainConfig, load_config
from mapo.train.metrics_log import read_metrics
from mapo.train.rl import RLTrainer


def test_bad_training_rows_are_skipped_and_counted_in_the_metrics(tmp_path, tiny_model_dir, world_tasks,
                                                                   scripted_policy, stub_verifier):
    rows = [task_row(t, i) for i, t in enumerate(world_tasks)]
    for i in (0, 1, 2, 3):
        rows[i]["images"] = [{"bytes": b"these bytes are no image"}]
    data = write_rows(rows, tmp_path / "train.parquet")
    cfg = load_config(TrainConfig, None, [
        f"model.path={tiny_model_dir}", f"data.train={data}", f"run.out_dir={tmp_path / 'run'}",
        "run.total_steps=1", "run.progress=false", "run.tensorboard=false", "rollout.group_size=2",
        "rollout.prompts_per_step=6", "rollout.protocol.max_turns=1", "rollout.protocol.image_max_pixels=12544",
        "rollout.protocol.max_new_tokens_per_turn=32", "grad_variance.enabled=false"])
    trainer = RLTrainer(cfg, backend_factory=scripted_policy, verifier=stub_verifier())
    trainer.train()
    (record,) = read_metrics(cfg.run.out_dir)
    assert record["skipped_rows"] == 4  # six prompts drawn from six rows: every bad row was met and skipped
    assert record["dropped_samples"] == 0


def _keep(mask_turn_cap: bool, capped: list[bool]) -> list[int]:
    cfg = load_config(TrainConfig, None, [f"algorithm.mask_turn_cap={str(mask_turn_cap).lower()}",
                                          "algorithm.skip_zero_adv_groups=false"])
    trajs = [SimpleNamespace(hit_turn_cap=c) for c in capped]
    advantages = torch.ones(len(capped), 3)
    return RLTrainer._keep(SimpleNamespace(cfg=cfg), trajs, advantages, np.arange(len(capped)) // 2)


def test_mask_turn_cap_drops_trajectories_that_hit_the_turn_cap_from_the_loss():
    capped = [False, True, True, False, False, True]
    assert _keep(True, capped) == [0, 3, 4]
    assert _keep(False, capped) == [0, 1, 2, 3, 4, 5]
