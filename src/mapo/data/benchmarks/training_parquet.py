"""The DeepEyes-47k training parquet and the embedded world's parquet splits (same schema).

Both are read by ``mapo.data.parquet.load_tasks`` (owned by the data layer); this file only adapts it to the
streaming benchmark interface so ``mapo eval --bench world`` / ``--bench deepeyes`` work like the others.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from pathlib import Path

from mapo.data.benchmarks.items import ItemError
from mapo.data.images import DEFAULT_DECODE_LIMIT
from mapo.data.task import Task


def iter_training_parquet(path: Path, *, max_decode_pixels: int = DEFAULT_DECODE_LIMIT,
                          skip: Container[str] = ()) -> Iterator[Task | ItemError]:
    """Tasks of a DeepEyes-schema parquet file, minus those whose id is in ``skip``."""
    from mapo.data.parquet import load_tasks

    for task in load_tasks(Path(path)):
        if task.id not in skip:
            yield task
