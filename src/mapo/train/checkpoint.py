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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(root: str | Path, name: str = "*") -> list[Path]:
    """Delete ``.tmp-<name>-<pid>`` / ``.old-<name>-<pid>`` folders left in ``root`` by a writer that was killed
    (its pid no longer runs); returns what was removed. A live writer's folders are left alone."""
    root = Path(root)
    removed = []
    if not root.is_dir():
        return removed
    for prefix in (".tmp-", ".old-"):
        for path in root.glob(f"{prefix}{name}-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if path.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def write_atomically(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(dir)`` into a hidden sibling of ``target``, fsync it, then rename it to ``target`` (replacing
    an older one whole). A crash at any point leaves either the old ``target`` or the new one, never a mix
    (e.g. weights without the ``protocol.yaml`` that `mapo eval` reads); leftovers of a killed writer are
    removed by the next write."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, target.name)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():  # re-writing (e.g. the same step after a resume): swap it whole
        old = target.parent / f".old-{target.name}-{os.getpid()}"
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old)
    else:
        tmp.rename(target)
    return target


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
    remove_stale(root)  # folders of checkpoint writes that were killed

    def write(tmp: Path) -> None:
        save_model(tmp / "model")
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({**(state or {}), "step": step}, indent=1))

    final = write_atomically(root / f"{STEP_PREFIX}{step:08d}", write)
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
