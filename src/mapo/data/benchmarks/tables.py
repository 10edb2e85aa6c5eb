"""Row readers shared by the TSV / parquet benchmark formats (VLMEvalKit TSVs, HF parquet mirrors).

Rows are streamed, never all decoded at once: HR-Bench 8K is a 4.6 GB TSV of 8K images.
"""

from __future__ import annotations

import base64
import csv
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from mapo.data.benchmarks.items import BenchmarkFormatError

Row = dict[str, Any]

# VLMEvalKit stores a repeated image once; other rows hold the *index* of that row instead (<= 64 chars).
_REFERENCE_MAX_CHARS = 64


def iter_rows(path: Path, columns: list[str] | None = None) -> Iterator[Row]:
    """Stream the rows of a ``.tsv`` or ``.parquet`` file as dicts (``columns``: read only these, parquet)."""
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        csv.field_size_limit(sys.maxsize)
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                yield {k: v for k, v in row.items() if k is not None}
    elif suffix == ".parquet":
        pf = pq.ParquetFile(path)
        cols = [c for c in columns if c in pf.schema_arrow.names] if columns else None
        for batch in pf.iter_batches(batch_size=8, columns=cols):
            yield from batch.to_pylist()
    else:
        raise BenchmarkFormatError(f"{path}: expected a .tsv or .parquet file, got {suffix or 'no suffix'!r}")


def column_names(path: Path) -> list[str]:
    """The header of a TSV or the schema names of a parquet file."""
    if path.suffix.lower() == ".parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh, delimiter="\t"), [])


def require_columns(path: Path, required: list[str], what: str) -> list[str]:
    """Fail early, naming the missing columns, when ``path`` is not a ``what`` file."""
    names = column_names(path)
    missing = [c for c in required if c not in names]
    if missing:
        raise BenchmarkFormatError(f"{path}: not a {what} file: missing column(s) {missing} (found {names[:12]}); "
                                   f"pass the official file or pick the right --bench")
    return names


def image_payload(value: Any) -> bytes | str | None:
    """The encoded image inside a cell: raw bytes, a base64 string, base64 held as bytes, or ``{"bytes": ..}``."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray)):
        head = bytes(value[:16])
        # Known image magic numbers are raw bytes; anything else printable is base64 stored as bytes.
        if head.startswith((b"\xff\xd8", b"\x89PNG", b"GIF8", b"RIFF", b"BM", b"II*", b"MM*")):
            return bytes(value)
        try:
            return base64.b64decode(value, validate=False)
        except ValueError:
            return bytes(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def rows_with_images(open_rows: Callable[[], Iterator[Row]], id_key: str, image_key: str) -> Iterator[Row]:
    """Rows with VLMEvalKit image references resolved: a short ``image`` cell equal to another row's index is
    replaced by that row's image. A first pass finds the references, so only referenced images are cached;
    rows are yielded in file order except those waiting for a later row's image."""
    ids: set[str] = set()
    short: dict[str, str] = {}
    for row in open_rows():
        rid = str(row.get(id_key))
        ids.add(rid)
        cell = row.get(image_key)
        if isinstance(cell, str) and 0 < len(cell.strip()) <= _REFERENCE_MAX_CHARS:
            short[rid] = cell.strip()
    refs = {rid: target for rid, target in short.items() if target in ids and target != rid}
    targets = set(refs.values())
    cache: dict[str, Any] = {}
    pending: dict[str, list[Row]] = {}
    for row in open_rows():
        rid = str(row.get(id_key))
        if rid in refs:
            target = refs[rid]
            if target in cache:
                yield {**row, image_key: cache[target]}
            else:
                pending.setdefault(target, []).append(row)
            continue
        yield row
        if rid in targets:
            cache[rid] = row.get(image_key)
            for waiting in pending.pop(rid, []):
                yield {**waiting, image_key: cache[rid]}
    for rows in pending.values():  # references to rows that are themselves references
        for row in rows:
            yield {**row, image_key: None}
