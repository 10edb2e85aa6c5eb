"""AdamW with linear warm-up then constant, cosine or linear decay (a pure function gives the multiplier)."""

from __future__ import annotations

import math

import torch

from mapo.models.freeze import freeze_vision_tower
from mapo.train.config import ModelConfig, OptimConfig


def lr_multiplier(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Learning-rate factor in [0, 1] at optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"optim.schedule={schedule!r}: use constant, cosine or linear")


def build_optimizer(params, cfg: OptimConfig, total_steps: int):
    """(AdamW, LambdaLR) for the trainable ``params`` under ``cfg`` over ``total_steps`` optimizer steps."""
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, warmup_steps=cfg.warmup_steps, total_steps=total_steps,
                                           schedule=cfg.schedule))
    return optimizer, scheduler


def freeze_as_configured(model, cfg: ModelConfig) -> int:
    """Freeze what ``cfg`` asks to keep fixed (``freeze_vision_tower``) before the optimizer is built; returns the
    number of parameters frozen."""
    if not cfg.freeze_vision_tower:
        return 0

    return freeze_vision_tower(model)
