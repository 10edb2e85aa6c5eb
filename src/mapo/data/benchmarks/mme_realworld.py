"""MME-RealWorld-Lite: VLMEvalKit TSV (``index, image, question, multi-choice options, answer, category,
l2-category``; options as a stringified list) or the lmms-eval parquet (same, with the image in ``bytes``).

Options are ``"(A) text"`` strings, up to (E); ``category`` is a path such as ``Perception/Monitoring/...``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Container, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from mapo.data.benchmarks.items import BenchmarkFormatError, ItemError, image_item_error
from mapo.data.benchmarks.paths import resolve_image
from mapo.data.benchmarks.tables import image_payload, iter_rows, require_columns, rows_with_images
from mapo.data.images import DEFAULT_DECODE_LIMIT, ImageError, decode_image
from mapo.data.task import LETTERS, Task

_PREFIX = re.compile(r"^\s*\(([A-J])\)\s*")
OPTIONS_COLUMN = "multi-choice options"


def parse_options(value: Any) -> list[str]:
    """Option texts from a list (or its ``str()``, parsed as a literal — never ``eval``) of ``"(A) ..."``."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"cannot read the options {value[:80]!r} as a list of strings") from exc
    options = [str(v) for v in list(value or [])]
    letters = [(_PREFIX.match(o).group(1) if _PREFIX.match(o) else None) for o in options]
    if letters != list(LETTERS[: len(options)]):
        raise ValueError(f"options {options!r} are not labelled (A), (B), ... in order")
    return [_PREFIX.sub("", o, count=1).strip() for o in options]


def iter_mme_realworld(path: Path, *, max_decode_pixels: int = DEFAULT_DECODE_LIMIT, skip: Container[str] = (),
                       allow_absolute_paths: bool = False) -> Iterator[Task | ItemError]:
    """Stream MME-RealWorld(-Lite) items from ``path`` (.tsv or .parquet); a file-name image cell is read
    relative to the file's folder, never outside it."""
    path = Path(path)
    names = require_columns(path, ["index", "question", OPTIONS_COLUMN, "answer"], "MME-RealWorld-Lite")
    image_key = "image" if "image" in names else "bytes" if "bytes" in names else None
    if image_key is None:
        raise BenchmarkFormatError(f"{path}: no image column ('image' in the TSV, 'bytes' in the parquet)")
    for row in rows_with_images(partial(iter_rows, path), "index", image_key):
        rid = str(row["index"]).strip()
        category = str(row.get("category") or "").strip()
        if rid in skip:
            continue
        groups = {"l2_category": str(row.get("l2-category") or "")}
        try:
            options = parse_options(row[OPTIONS_COLUMN])
            answer = str(row["answer"]).strip().upper()
            if answer not in LETTERS[: len(options)]:
                raise ValueError(f"answer {answer!r} is not one of the {len(options)} options")
            payload = image_payload(row.get(image_key))
            if payload is None:
                raise ValueError("no image (empty cell or reference to a missing row)")
            payload = resolve_image(payload, path.parent, allow_absolute=allow_absolute_paths)
            image = decode_image(payload, name=f"MME-RealWorld row {rid}", max_decode_pixels=max_decode_pixels)
        except ImageError as exc:
            yield image_item_error(rid, exc, category, groups)
            continue
        except ValueError as exc:  # UnsafePathError too
            yield ItemError(rid, f"MME-RealWorld row {rid}: {exc}", category, groups)
            continue
        yield Task(id=rid, image=image, question=str(row["question"]).strip(), answer=answer, options=options,
                   category=category, source="mme_realworld",
                   extra={"l2_category": str(row.get("l2-category") or ""),
                          "task_type": category.split("/")[0] if "/" in category else ""})
