"""HR-Bench 4K / 8K (``DreamMr/HR-Bench``): one TSV or parquet with ``index, question, answer, category,
A, B, C, D, cycle_category, image`` (base64).

Each question appears once per ``cycle_category`` with its options rotated; scoring averages per-cycle
accuracies (see ``mapo.eval.scoring.hrbench_accuracy``), so ``cycle_category`` is kept in ``Task.extra``.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from functools import partial
from pathlib import Path

from mapo.data.benchmarks.items import ItemError, image_item_error
from mapo.data.benchmarks.paths import UnsafePathError, resolve_image
from mapo.data.benchmarks.tables import image_payload, iter_rows, require_columns, rows_with_images
from mapo.data.images import DEFAULT_DECODE_LIMIT, ImageError, decode_image
from mapo.data.task import LETTERS, Task

REQUIRED = ["index", "question", "answer", "category", "A", "B", "image"]


def _text(value) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    return "" if text.lower() == "nan" else text


def iter_hrbench(path: Path, *, max_decode_pixels: int = DEFAULT_DECODE_LIMIT, skip: Container[str] = (),
                 allow_absolute_paths: bool = False) -> Iterator[Task | ItemError]:
    """Stream HR-Bench items from ``path`` (.tsv or .parquet); items whose id is in ``skip`` are not decoded.
    An image cell holding a file name is read relative to the file's folder, never outside it."""
    path = Path(path)
    require_columns(path, REQUIRED, "HR-Bench")
    for row in rows_with_images(partial(iter_rows, path), "index", "image"):
        rid = _text(row["index"])
        category = _text(row.get("category"))
        if rid in skip:
            continue
        groups = {"cycle_category": _text(row.get("cycle_category"))}
        options = [_text(row.get(c)) for c in LETTERS[:6]]
        options = options[: next((i for i, o in enumerate(options) if not o), len(options))]
        answer = _text(row.get("answer")).upper()
        if answer not in LETTERS[: len(options)]:
            yield ItemError(rid, f"HR-Bench row {rid}: answer {answer!r} is not one of the options "
                                 f"{list(LETTERS[: len(options)])}", category, groups)
            continue
        payload = image_payload(row.get("image"))
        if payload is None:
            yield ItemError(rid, f"HR-Bench row {rid}: no image (empty cell or reference to a missing row)",
                            category, groups)
            continue
        try:
            payload = resolve_image(payload, path.parent, allow_absolute=allow_absolute_paths)
            image = decode_image(payload, name=f"HR-Bench row {rid}", max_decode_pixels=max_decode_pixels)
        except ImageError as exc:
            yield image_item_error(rid, exc, category, groups)
            continue
        except UnsafePathError as exc:
            yield ItemError(rid, f"HR-Bench row {rid}: {exc}", category, groups)
            continue
        question = _text(row.get("question"))
        hint = _text(row.get("hint"))
        yield Task(id=rid, image=image, question=f"Hint: {hint}\n{question}" if hint else question,
                   answer=answer, options=options, category=category, source="hrbench",
                   extra=dict(groups))
