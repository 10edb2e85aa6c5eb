"""Parquet rows of a world split, rendered and PNG-encoded in parallel processes (order and bytes kept)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator

from mapo.data.parquet import task_row
from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import make_task


def _row(args: tuple[WorldConfig, str, int]) -> dict:
    cfg, split, index = args
    return task_row(make_task(cfg, split, index), index)


def task_rows(cfg: WorldConfig, split: str, n: int, workers: int = 0) -> Iterator[dict]:
    """Rows ``0..n-1`` of ``split`` in order. ``workers``: processes (0 = one per CPU, at most 4; 1 = inline)."""
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = ((cfg, split, i) for i in range(n))
    if workers == 1 or n < 16:
        yield from map(_row, jobs)
        return
    # spawn, not fork: torch may already be imported with threads running in the parent
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_row, jobs, chunksize=8)
