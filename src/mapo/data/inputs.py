"""Checks of a command's inputs that run before anything expensive loads, and the error they raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class InputError(ValueError):
    """A command's input cannot be used (missing file or folder, wrong kind of file); the message says which
    input and what to pass instead."""


def check_policy_dir(path: Any, what: str) -> None:
    """Refuse (``InputError``) a policy path that is not a Hugging Face checkpoint folder, before it loads."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{what} {path}: no such folder; pass a policy checkpoint directory (a Hugging Face "
                         f"folder with config.json, e.g. runs/demo/sft/final or `mapo model init --out DIR`)")
    if not (path / "config.json").is_file():
        raise InputError(f"{what} {path}: not a model folder (no config.json); pass the checkpoint directory "
                         f"itself (e.g. .../final or .../checkpoints/step_00000010/model)")
