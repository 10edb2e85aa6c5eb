"""Checks of a run's inputs before anything expensive loads (config keys are checked when the config loads): a
missing policy folder, a data file that is missing, not parquet, or holds no decodable image. Each problem is
one ``ConfigError`` / ``InputError`` / ``DataFileError`` naming the input and the fix (the CLI prints it as
one line, exit code 2)."""

from __future__ import annotations

from pathlib import Path

from mapo.data.inputs import InputError, check_policy_dir
from mapo.data.stream import DataFileError, open_parquet, open_tasks
from mapo.train.config import SFTConfig, TrainConfig


def check_train_inputs(cfg: TrainConfig, *, resume: bool = False) -> None:
    """What `mapo train` checks before loading the policy and the verifier."""
    if not resume or cfg.algorithm.kl_coef > 0:
        check_policy_dir(cfg.model.path, "model.path")
    try:
        open_tasks(cfg.data.train, max_tasks=cfg.data.max_tasks, rows=cfg.data.rows).check_readable()
        if cfg.data.eval:
            open_parquet(cfg.data.eval)
    except DataFileError as exc:
        raise DataFileError(f"data: {exc}") from exc
    path = cfg.verifier.path
    if path and not Path(path).exists():
        raise InputError(f"verifier.path {path}: no such file or folder; train one with `mapo verifier train` "
                         f"or point verifier.path at a local CLIP/SigLIP directory")


def check_sft_inputs(cfg: SFTConfig, *, resume: bool = False) -> None:
    """What `mapo sft` checks before loading the model."""
    if not resume:
        check_policy_dir(cfg.model.path, "model.path")
    if cfg.data is not None:  # the user's own trajectories: mapo.train.sft_data checks them row by row
        if not Path(cfg.data).is_file():
            raise InputError(f"data {cfg.data}: no such file; pass a .jsonl or .parquet of trajectories "
                             f"(schema: docs/sft_data.md)")
        return
    try:
        open_tasks(cfg.train, max_tasks=cfg.max_tasks).check_readable()
    except DataFileError as exc:
        raise DataFileError(f"train: {exc}") from exc
