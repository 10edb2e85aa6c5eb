"""V* Bench (``craigwu/vstar_bench``): ``test_questions.jsonl`` at the root plus ``<category>/<name>.jpg`` and
``<name>.json`` per image.

Options and the correct letter come from ``test_questions.jsonl`` (``text`` with ``(A) ...`` lines, shuffled,
and ``label``). The per-image JSON lists ``options[0]`` as the right answer: evaluating in that order puts
the answer always at "A", which inflated published scores by ~5 points (DeepEyes PR #66) — so the JSON is
read only for the target boxes (``bbox`` as [x, y, w, h] pixels) and names, and to cross-check the label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Iterator
from pathlib import Path

from mapo.data.benchmarks.items import BenchmarkFormatError, ItemError, image_item_error
from mapo.data.benchmarks.paths import UnsafePathError, safe_join
from mapo.data.images import DEFAULT_DECODE_LIMIT, ImageError, decode_image
from mapo.data.task import LETTERS, Box, Task

_OPTION_LINE = re.compile(r"^\s*\(([A-J])\)\s*(.*?)\s*$")


def parse_question_text(text: str) -> tuple[str, list[str]]:
    """Split V*'s ``text`` into the question and the option texts (in letter order).

    Lines before the first ``(A)`` line are the question; instruction lines after the options are dropped
    (our protocol adds its own).
    """
    question_lines: list[str] = []
    options: dict[str, str] = {}
    for line in text.splitlines():
        m = _OPTION_LINE.match(line)
        if m:
            options[m.group(1)] = m.group(2)
        elif not options:
            question_lines.append(line)
    letters = LETTERS[: len(options)]
    if sorted(options) != list(letters):
        raise ValueError(f"option letters {sorted(options)} are not consecutive from A")
    return "\n".join(question_lines).strip(), [options[c] for c in letters]


def _boxes(annotation: dict) -> tuple[list[Box], list[str]]:
    bbox = annotation.get("bbox") or []
    names = annotation.get("target_object") or []
    if not isinstance(bbox, list):
        raise TypeError(f"'bbox' is {bbox!r}, not a list of [x, y, w, h] boxes")
    if bbox and isinstance(bbox[0], (int, float)):
        bbox = [bbox]
    if not all(isinstance(b, list) and all(isinstance(v, (int, float)) for v in b) for b in bbox):
        raise ValueError(f"'bbox' {str(bbox)[:80]} is not a list of [x, y, w, h] number boxes")
    if isinstance(names, str):
        names = [names]
    boxes = [Box.from_xywh(*map(float, b)) for b in bbox if len(b) == 4]
    names = [str(n) for n in names] + [""] * (len(boxes) - len(names))
    return boxes, names[: len(boxes)]


def iter_vstar(root: Path, *, max_decode_pixels: int = DEFAULT_DECODE_LIMIT, skip: Container[str] = (),
               allow_absolute_paths: bool = False) -> Iterator[Task | ItemError]:
    """Stream V* items from the dataset folder ``root``; items whose id is in ``skip`` are not decoded.
    A question whose per-image JSON is unreadable or malformed becomes that item's ``ItemError``."""
    root = Path(root)
    questions = root / "test_questions.jsonl"
    if not questions.is_file():
        raise BenchmarkFormatError(
            f"{root}: no test_questions.jsonl. V* must be scored with its shuffled options and `label` from "
            f"that file (the per-image JSON puts the right answer always first); download the full "
            f"craigwu/vstar_bench folder")
    with questions.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                qid = str(row["question_id"])
                rel, text, label = row["image"], row["text"], str(row["label"]).strip().upper()
            except (json.JSONDecodeError, KeyError) as exc:
                raise BenchmarkFormatError(f"{questions}:{line_no}: not a V* question row ({exc}); expected "
                                           f"keys image, text, category, question_id, label") from exc
            category = str(row.get("category") or Path(rel).parent.name)
            if qid in skip:
                continue
            try:
                question, options = parse_question_text(text)
                if label not in LETTERS[: len(options)]:
                    raise ValueError(f"label {label!r} is not one of the {len(options)} options")
                image_path = safe_join(root, rel, allow_absolute=allow_absolute_paths)
                image = decode_image(image_path, name=f"V* {rel}", max_decode_pixels=max_decode_pixels)
            except ImageError as exc:
                yield image_item_error(qid, exc, category)
                continue
            except (UnsafePathError, ValueError) as exc:
                yield ItemError(id=qid, message=str(exc), category=category)
                continue
            ann_path = image_path.with_suffix(".json")
            extra = {"image_path": rel, "prompt_text": text}
            try:
                annotation = json.loads(ann_path.read_text(encoding="utf-8")) if ann_path.is_file() else {}
                if not isinstance(annotation, dict):
                    raise TypeError(f"expected a JSON object, got {type(annotation).__name__}")
                targets, names = _boxes(annotation)
                ann_options = annotation.get("options")
                if ann_options:
                    # The JSON's first option is the right one: a mismatch means the label file and images disagree.
                    extra["label_matches_annotation"] = options[LETTERS.index(label)] == str(next(iter(ann_options)))
            except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                yield ItemError(id=qid, category=category,
                                message=f"V* {Path(rel).with_suffix('.json')}: not a valid annotation "
                                        f"({type(exc).__name__}: {exc}); expected "
                                        '{"bbox": [[x, y, w, h], ...], "target_object": [...]}')
                continue
            yield Task(id=qid, image=image, question=question, answer=label, options=options, category=category,
                       source="vstar", targets=targets, target_names=names, extra=extra)
