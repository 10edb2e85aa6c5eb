"""Parquet rows of a world split, rendered and PNG-encoded in parallel processes (order and bytes kept)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from multiprocessing.pool import Pool

from mapo.data.parquet import task_row
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
