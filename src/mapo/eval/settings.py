"""What a results folder was made with, so a resumed run cannot silently mix settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_NAME = "run.json"
# Settings that change what a sample means; anything else (batch size, limit, progress) may differ on resume.
_MUST_MATCH = ("bench", "data", "model", "k", "protocol", "reward", "verifier")


class SettingsMismatch(ValueError):
    """The results folder holds results made with other settings."""


def check_or_write_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    """Write ``run.json`` on the first run; on a resume, refuse when a setting that matters changed."""
    path = out_dir / RUN_NAME
    if path.exists():
        old = json.loads(path.read_text())
        changed = [k for k in _MUST_MATCH if old.get(k) != settings.get(k)]
        if changed:
            details = "; ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise SettingsMismatch(f"{out_dir} holds results made with other settings ({details}); "
                                   f"pass another --out, or --fresh to discard the old results")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2, default=str))
