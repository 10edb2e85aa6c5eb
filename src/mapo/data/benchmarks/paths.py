"""The one gate between a path written in a dataset file and the disk.

Every loader that finds an image *path* in its data (V*'s JSONL, a TSV or parquet cell holding a file name,
DeepEyes' ``images[].path``) resolves it here; ``mapo.data.images.decode_image`` reads only ``Path`` objects,
never a path given as text, so a loader cannot read outside its dataset by forgetting a check.
"""

from __future__ import annotations

from pathlib import Path

from mapo.data.images import looks_like_path


class UnsafePathError(ValueError):
    """A path from a dataset file points outside the dataset root."""


def safe_join(root: Path, relative: str, *, allow_absolute: bool = False) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` / symlink escapes outside ``root``.

    ``allow_absolute``: accept an absolute path as it is (the explicit opt-in for formats that store absolute
    paths, e.g. a parquet exported by ``datasets`` on another machine). Relative paths may never escape."""
    if not relative or not relative.strip():
        raise UnsafePathError(f"empty image path in the dataset at {root}")
    if Path(relative).is_absolute() or relative.startswith(("/", "\\")):
        if allow_absolute:
            return Path(relative)
        raise UnsafePathError(f"image path {relative!r} is absolute; paths must be relative to the dataset root "
                              f"{root} (pass --allow-absolute-paths / allow_absolute_paths: true if you trust it)")
    root_resolved = Path(root).resolve()
    candidate = (root_resolved / relative).resolve()
    if not candidate.is_relative_to(root_resolved):
        raise UnsafePathError(f"image path {relative!r} escapes the dataset root {root}; refusing to read it")
    return candidate


def resolve_image(value: bytes | str | None, root: Path, *, allow_absolute: bool = False) -> bytes | str | Path | None:
    """An image cell as ``decode_image`` takes it: a text cell that names a file becomes a ``Path`` checked by
    ``safe_join`` against ``root`` (raises ``UnsafePathError``); bytes and base64 text pass through."""
    if isinstance(value, str) and looks_like_path(value):
        return safe_join(Path(root), value.strip(), allow_absolute=allow_absolute)
    return value
