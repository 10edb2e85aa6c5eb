"""Dataset-relative paths that cannot escape their dataset root."""

from __future__ import annotations

from pathlib import Path


class UnsafePathError(ValueError):
    """A path from a dataset file points outside the dataset root."""


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` / symlink escapes outside ``root``."""
    if not relative or Path(relative).is_absolute() or relative.startswith(("/", "\\")):
        raise UnsafePathError(f"image path {relative!r} must be relative to the dataset root {root}")
    root_resolved = root.resolve()
    candidate = (root_resolved / relative).resolve()
    if not candidate.is_relative_to(root_resolved):
        raise UnsafePathError(f"image path {relative!r} escapes the dataset root {root}; refusing to read it")
    return candidate
