"""Benchmark loaders: each format streams ``Task`` objects (or ``ItemError`` for unusable items).

``BENCHMARKS`` maps the ``--bench`` names to readers; ``load_benchmark`` returns ``list[Task]`` as the data
contract says, ``iter_benchmark`` streams (what the evaluator uses: HR-Bench 8K does not fit in memory decoded).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from pathlib import Path

import pyarrow.parquet as pq

from mapo.data.benchmarks.hrbench import iter_hrbench
from mapo.data.benchmarks.items import BenchmarkFormatError, ItemError
from mapo.data.benchmarks.mme_realworld import iter_mme_realworld
from mapo.data.benchmarks.training_parquet import iter_training_parquet
from mapo.data.benchmarks.vstar import iter_vstar
from mapo.data.images import DEFAULT_DECODE_LIMIT
from mapo.data.task import Task

Reader = Callable[..., Iterator["Task | ItemError"]]

BENCHMARKS: dict[str, Reader] = {
    "vstar": iter_vstar,
    "hrbench": iter_hrbench,
    "hrbench4k": iter_hrbench,
    "hrbench8k": iter_hrbench,
    "mme_realworld": iter_mme_realworld,
    "mme_realworld_lite": iter_mme_realworld,
    "deepeyes": iter_training_parquet,
    "world": iter_training_parquet,
}


def get_reader(name: str) -> Reader:
    """The reader registered under ``name`` (``-`` and ``_`` and case are interchangeable)."""
    key = name.lower().replace("-", "_").replace("*", "")
    if key not in BENCHMARKS:
        raise BenchmarkFormatError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[key]


def resolve_data(name: str, path: str | Path) -> Path:
    """The file or folder the reader of ``name`` will read: a world folder (``mapo world make --out DIR``)
    stands for its ``test.parquet``; anything else is returned as given."""
    path = Path(path)
    if get_reader(name) is iter_training_parquet and path.is_dir() and (path / "test.parquet").is_file():
        return path / "test.parquet"
    return path


def iter_benchmark(name: str, path: str | Path, *, max_decode_pixels: int = DEFAULT_DECODE_LIMIT,
                   skip: Container[str] = (), allow_absolute_paths: bool = False) -> Iterator[Task | ItemError]:
    """Stream the items of benchmark ``name`` stored at ``path``; ids in ``skip`` are not decoded.

    Image paths written in the data are read relative to the dataset, never outside it;
    ``allow_absolute_paths`` is the explicit opt-in for a file that stores absolute paths."""
    path = resolve_data(name, path)
    if not path.exists():
        raise BenchmarkFormatError(f"benchmark data {path} does not exist; pass --data PATH to the file or folder")
    return get_reader(name)(path, max_decode_pixels=max_decode_pixels, skip=skip,
                            allow_absolute_paths=allow_absolute_paths)


def count_items(name: str, path: str | Path) -> int | None:
    """How many items the benchmark holds, when that is cheap to know (parquet metadata, V*'s JSONL); else None."""
    path = resolve_data(name, path)
    reader = get_reader(name)
    if path.is_file() and path.suffix.lower() == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if reader is iter_vstar and (path / "test_questions.jsonl").is_file():
        with (path / "test_questions.jsonl").open(encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
    return None


def load_benchmark(name: str, path: str | Path, *, max_decode_pixels: int = DEFAULT_DECODE_LIMIT,
                   errors: list[ItemError] | None = None) -> list[Task]:
    """All usable tasks of a benchmark; unusable items are appended to ``errors`` when given."""
    tasks: list[Task] = []
    for item in iter_benchmark(name, path, max_decode_pixels=max_decode_pixels):
        if isinstance(item, ItemError):
            if errors is not None:
                errors.append(item)
        else:
            tasks.append(item)
    return tasks


__all__ = ["BENCHMARKS", "BenchmarkFormatError", "ItemError", "count_items", "get_reader", "iter_benchmark",
           "load_benchmark", "resolve_data"]
