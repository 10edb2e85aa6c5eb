"""``MAPO_VERL_DUMP_DIR``: write what verl computed inside its Ray processes to a directory, for debugging.

verl runs the trainer and the rollout in Ray actors, so a failing or surprising step cannot be inspected from
the launching shell. With ``MAPO_VERL_DUMP_DIR=/some/dir`` set before the launch (Ray actors inherit it):

- the trainer process writes ``advantages_<n>.pt`` at every advantage step (mapo's hook, any estimator): a
  dict of ``estimator``, ``uid`` (list[str], B), ``token_level_rewards`` / ``response_mask`` / ``advantages``
  / ``returns`` ([B, L] tensors) and ``mapo_turns`` (the carried per-call records, when present);
- the ``hf`` rollout server writes ``weights_<replica>_<n>.pt`` at every weight sync: ``{"global_steps",
  "state": {name: tensor}}``, the actor's weights as the rollout received them.

Files are small for the tiny models this is meant for; with a 7B model leave the variable unset.
verl's own ``trainer.logger=[console,file]`` (``VERL_FILE_LOGGER_PATH``) writes the step metrics.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import torch

ENV = "MAPO_VERL_DUMP_DIR"

_counter = itertools.count(1)


def dump_dir() -> Path | None:
    """The dump directory from ``MAPO_VERL_DUMP_DIR`` (created), or None when unset."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # readers never see a half-written file


def dump_advantages(data: Any, estimator: str) -> Path | None:
    """Write the advantage step of ``data`` (a ``verl.DataProto`` after ``compute_advantage``)."""
    out = dump_dir()
    if out is None:
        return None
    record: dict[str, Any] = {"estimator": estimator}
    for key in ("token_level_rewards", "response_mask", "advantages", "returns"):
        if key in data.batch.keys():  # noqa: SIM118  (a TensorDict)
            record[key] = data.batch[key].detach().cpu().clone()
    nt = data.non_tensor_batch
    record["uid"] = [str(u) for u in nt["uid"]] if "uid" in nt else None
    if "mapo_turns" in nt:
        record["mapo_turns"] = [list(r) if r is not None else [] for r in nt["mapo_turns"]]
    path = out / f"advantages_{os.getpid()}_{next(_counter)}.pt"
    _save(record, path)
    return path


def dump_weights(out: Path | None, replica_rank: int, sync: int, global_steps: int | None,
                 state: dict[str, torch.Tensor]) -> Path | None:
    """Write the weights a rollout replica received at its ``sync``-th weight sync."""
    if out is None:
        return None
    path = out / f"weights_{replica_rank}_{sync}.pt"
    _save({"global_steps": global_steps, "state": state}, path)
    return path
