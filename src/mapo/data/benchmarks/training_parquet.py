"""The DeepEyes-47k training parquet and the embedded world's parquet splits (same schema).

Rows are turned into tasks by the data layer's own row reader (``mapo.data.parquet``), one row at a time, so a
corrupt image in one row becomes that item's error instead of failing the whole file.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from pathlib import Path

import pyarrow.parquet as pq

from mapo.data import parquet as deepeyes
from mapo.data.benchmarks.items import BenchmarkFormatError, ItemError
from mapo.data.benchmarks.tables import require_columns
from mapo.data.images import DEFAULT_DECODE_LIMIT
from mapo.data.task import Task


def iter_training_parquet(path: Path, *, max_decode_pixels: int = DEFAULT_DECODE_LIMIT, skip: Container[str] = (),
                          allow_absolute_paths: bool = False) -> Iterator[Task | ItemError]:
    """Tasks of a DeepEyes-schema parquet file; ids in ``skip`` are still decoded (ids live in the row)."""
    path = Path(path)
    if path.is_dir():  # a `mapo world make --out DIR` folder: evaluate its test split
        if not (path / "test.parquet").is_file():
            raise BenchmarkFormatError(f"{path} is a folder without test.parquet; pass the parquet file itself")
        path = path / "test.parquet"
    require_columns(path, list(deepeyes.REQUIRED_COLUMNS), "DeepEyes-schema parquet")
    cfg = deepeyes.RowConfig(max_decode_pixels=max_decode_pixels, allow_absolute_paths=allow_absolute_paths)
    i = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=16):
        for row in batch.to_pylist():
            try:
                task = deepeyes._row_task(row, i, path, cfg)
            except ValueError as exc:  # ImageError, UnsafePathError: corrupt, too large, outside the dataset
                extra = row.get("extra_info") or {}
                yield ItemError(id=str(extra.get("id") or f"{row.get('data_source') or 'parquet'}-"
                                                          f"{extra.get('index', i)}"), message=str(exc))
            else:
                if task.id not in skip:
                    yield task
            i += 1
