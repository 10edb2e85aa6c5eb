"""Parquet rows of a world split, rendered and PNG-encoded in parallel processes (order and bytes kept)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path

import yaml
from tqdm import tqdm

from mapo.data.parquet import task_row, write_rows
from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import make_task


def _row(args: tuple[WorldConfig, str, int]) -> dict:
    cfg, split, index = args
    return task_row(make_task(cfg, split, index), index)


def make_pool(workers: int = 0) -> Pool | None:
    """A process pool for ``task_rows`` (0 = one per CPU, at most 4), or None for 1 worker (inline)."""
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1:
        return None
    # spawn, not fork: torch may already be imported with threads running in the parent
    return multiprocessing.get_context("spawn").Pool(workers)


def task_rows(cfg: WorldConfig, split: str, n: int, pool: Pool | None = None) -> Iterator[dict]:
    """Rows ``0..n-1`` of ``split`` in order, computed in ``pool`` when given (same rows either way)."""
    jobs = ((cfg, split, i) for i in range(n))
    if pool is None:
        yield from map(_row, jobs)
    else:
        yield from pool.imap(_row, jobs, chunksize=8)


def write_world(
    cfg: WorldConfig,
    out: str | os.PathLike,
    splits: tuple[str, ...] = ("train", "val", "test"),
    workers: int = 0,
    progress: bool = True,
) -> dict[str, Path]:
    """Write ``out/{split}.parquet`` for each split and ``out/world.yaml`` (the config), rendering in parallel.

    The files are byte-identical for any ``workers``. Returns {split: path}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "world.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=True))
    sizes = {split: cfg.split_size(split) for split in splits}
    pool = make_pool(workers) if sum(sizes.values()) >= 32 else None
    paths = {}
    try:
        for split, n in sizes.items():
            rows = tqdm(
                task_rows(cfg, split, n, pool),
                total=n,
                desc=f"world {split}",
                unit="task",
                disable=not progress,
            )
            paths[split] = write_rows(rows, out / f"{split}.parquet")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return paths
