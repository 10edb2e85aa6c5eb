"""Images written beside the results for the viewer: a thumbnail of each item's image and each crop."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from PIL import Image


def item_dir_name(item_id: str) -> str:
    """A file-system-safe, collision-free folder name for an item id."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item_id)[:40].strip("._") or "item"
    return f"{safe}-{hashlib.blake2b(item_id.encode(), digest_size=4).hexdigest()}"


def save_thumbnail(image: Image.Image, path: Path, max_side: int) -> None:
    """Save ``image`` as JPEG with its longer side at most ``max_side`` pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    thumb = image.convert("RGB")
    if max(thumb.size) > max_side:
        thumb = thumb.copy()
        thumb.thumbnail((max_side, max_side), Image.BICUBIC)
    thumb.save(path, format="JPEG", quality=85)
