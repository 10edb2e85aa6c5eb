"""Atomic checkpoints: model, optimizer, scheduler, RNG states and trainer state, the last N kept.

Layout: ``<dir>/step_00000012/{model/, optimizer.pt, scheduler.pt, rng.pt, state.json}``. A checkpoint is
written into a hidden temporary directory, every file fsynced, then renamed into place (a rename is atomic on
POSIX), so a crash mid-write never leaves a half checkpoint that ``--resume`` would pick up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

STEP_PREFIX = "step_"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dirs(ckpt_root: str | Path) -> list[Path]:
    """Finished checkpoints under ``ckpt_root``, oldest first (temporary directories are ignored)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)
             and p.name[len(STEP_PREFIX):].isdigit() and (p / "state.json").exists()]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX):]))


def latest_checkpoint(ckpt_root: str | Path) -> Path | None:
    dirs = checkpoint_dirs(ckpt_root)
    return dirs[-1] if dirs else None


def save_checkpoint(ckpt_root: str | Path, step: int, *, save_model: Callable[[Path], None],
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    state: dict[str, Any] | None = None, keep_last: int = 2) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep_last``.

    ``save_model(dir)`` writes the model (e.g. ``model.save_pretrained`` + tokenizer/processor) into ``dir``.
    ``state`` is any JSON-serialisable trainer state (it gets ``step`` added).
    """
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{STEP_PREFIX}{step:08d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(tmp / "model")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scheduler is not None:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**(state or {}), "step": step}, indent=1))
    _fsync_tree(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
        old = root / f".old-{final.name}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
    for stale in checkpoint_dirs(root)[:-keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


@dataclass
class LoadedCheckpoint:
    path: Path
    step: int
    state: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.path / "model"


def load_checkpoint(path: str | Path, *, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    restore_rng: bool = True) -> LoadedCheckpoint:
    """Restore optimizer, scheduler and RNG from checkpoint directory ``path`` (the model is loaded by the
    caller from ``LoadedCheckpoint.model_dir``, since how to load it depends on the backend)."""
    path = Path(path)
    if not (path / "state.json").exists():
        raise FileNotFoundError(f"{path}: not a mapo checkpoint (no state.json); pass a step_XXXXXXXX directory")
    state = json.loads((path / "state.json").read_text())
    if optimizer is not None and (path / "optimizer.pt").exists():
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    if scheduler is not None and (path / "scheduler.pt").exists():
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if restore_rng and (path / "rng.pt").exists():
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return LoadedCheckpoint(path=path, step=int(state["step"]), state=state)
