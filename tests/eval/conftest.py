"""Fixture files in the official benchmark layouts, with tiny images, written per test into tmp_path."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image


def image_bytes(color=(200, 30, 30), size=(40, 30), fmt="JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_table(path: Path, rows: list[dict]) -> Path:
    """A VLMEvalKit-style TSV (pandas-like quoting) or a parquet file, by suffix."""
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
            writer.writeheader()
            writer.writerows(rows)
    return path


@pytest.fixture
def make_vstar(tmp_path):
    """Write a V* folder. Each item: (category, name, options_in_json_order, shuffled_order, bbox)."""

    def make(items, root=None, corrupt=()):
        root = Path(root or tmp_path / "vstar_bench")
        lines = []
        for qid, (category, name, options, order, bbox) in enumerate(items):
            (root / category).mkdir(parents=True, exist_ok=True)
            data = b"\xff\xd8\xff garbage" if name in corrupt else image_bytes(size=(64, 48))
            (root / category / f"{name}.jpg").write_bytes(data)
            (root / category / f"{name}.json").write_text(json.dumps(
                {"question": f"What about {name}?", "options": options, "target_object": [f"obj {name}"],
                 "bbox": [bbox]}))
            shown = [options[i] for i in order]
            label = "ABCD"[order.index(0)]
            text = f"What about {name}?\n" + "\n".join(f"({'ABCD'[i]}) {o}" for i, o in enumerate(shown)) + \
                "\nAnswer with the option's letter from the given choices directly."
            lines.append({"image": f"{category}/{name}.jpg", "text": text, "category": category,
                          "question_id": qid, "label": label})
        (root / "test_questions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        return root

    return make


@pytest.fixture
def files():
    """The helpers above, for tests (pytest's importlib mode cannot import conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(image_bytes=image_bytes, b64=b64, write_table=write_table)
