"""Reuse of pipeline artifacts: a step's output directory holds a stamp of the inputs that made it, and the
step is skipped when the stamp matches (so a second `mapo demo` reuses the world, verifier, model, SFT)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

STAMP = ".mapo-stamp.json"
STARTED = ".mapo-started.json"  # the inputs a build began with: only an interrupted build of the same is resumed

#: Config keys that change how fast a step runs, never what it produces (tested to give the same tokens):
#: left out of the fingerprint, so turning one on or off reuses what was built.
SPEED_ONLY_KEYS = frozenset({"kv_cache", "fast_generation"})


def fingerprint(inputs: dict[str, Any]) -> str:
    """A stable hash of a JSON-serialisable description of a step's inputs (``SPEED_ONLY_KEYS`` left out)."""
    return hashlib.sha256(json.dumps(significant(inputs), sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


def significant(x: Any) -> Any:
    """``x`` without ``SPEED_ONLY_KEYS`` at any depth: the part of a step's inputs that its fingerprint covers."""
    if isinstance(x, dict):
        return {k: significant(v) for k, v in x.items() if k not in SPEED_ONLY_KEYS}
    if isinstance(x, (list, tuple)):
        return [significant(v) for v in x]
    return x


def is_done(out_dir: str | Path, inputs: dict[str, Any]) -> bool:
    """True when ``out_dir`` was completed by a step with exactly these ``inputs``."""
    path = Path(out_dir) / STAMP
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("fingerprint") == fingerprint(inputs)
    except json.JSONDecodeError:
        return False


def mark_done(out_dir: str | Path, inputs: dict[str, Any], seconds: float | None = None,
              packaged: bool = False) -> None:
    """Record that ``out_dir`` is complete for ``inputs`` (write last, after every output exists); ``seconds``:
    how long building it took (kept beside the fingerprint, not part of it); ``packaged``: it was installed from
    an asset shipped with mapo (mapo.train.packaged), built elsewhere in ``seconds``."""
    path = Path(out_dir) / STAMP
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    stamp = {"fingerprint": fingerprint(inputs), "inputs": inputs}
    if seconds is not None:
        stamp["seconds"] = round(seconds, 1)
    if packaged:
        stamp["packaged"] = True
    tmp.write_text(json.dumps(stamp, default=str, indent=1))
    tmp.replace(path)


def built_seconds(out_dir: str | Path) -> float | None:
    """How long the step that completed ``out_dir`` took to build (None: not recorded, or not built)."""
    try:
        seconds = json.loads((Path(out_dir) / STAMP).read_text()).get("seconds")
    except (OSError, json.JSONDecodeError):
        return None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def mark_started(out_dir: str | Path, inputs: dict[str, Any]) -> None:
    """Record that a build of ``out_dir`` for ``inputs`` has begun (a later run may resume it only with the same
    inputs: a run directory's own config does not say which upstream checkpoint it trained)."""
    path = Path(out_dir) / STARTED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fingerprint": fingerprint(inputs)}))


def started_with(out_dir: str | Path, inputs: dict[str, Any]) -> bool:
    """True when the build under way (or interrupted) in ``out_dir`` began with exactly these ``inputs``."""
    try:
        return json.loads((Path(out_dir) / STARTED).read_text()).get("fingerprint") == fingerprint(inputs)
    except (OSError, json.JSONDecodeError):
        return False
