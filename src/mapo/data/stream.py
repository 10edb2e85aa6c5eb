"""A DeepEyes-schema parquet as a lazily decoded sequence of tasks: what `mapo train` samples prompts from.

DeepEyes-47k holds 47k rows of images up to ~2k x 1.6k px: decoded up front that is hundreds of GB. Here the
length comes from the parquet metadata (``max_tasks`` caps it before anything is read), and ``tasks[i]``
reads row ``i`` and decodes its image only when a step asks for it; the task is dropped with the step. A row
that cannot be used (corrupt image, path outside the dataset, no image) is skipped: the next usable row stands
in for it (deterministically, so a resumed run samples the same tasks) and ``skipped_rows`` counts the rows
skipped so far, which the trainer logs with every step.

Reads go by row group (parquet's unit of I/O), one group cached: memory is bounded by the largest row group's
*encoded* bytes plus the decoded images of one step, whatever the file's length.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import pyarrow as pa
import pyarrow.parquet as pq

from mapo.data.parquet import REQUIRED_COLUMNS, RowConfig, _row_task
from mapo.data.task import Task

log = logging.getLogger("mapo.data")


class DataFileError(ValueError):
    """A training data file that cannot be used at all; the message names the file and the fix."""


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """Open a DeepEyes-schema parquet, or raise ``DataFileError`` naming the file and the fix (missing file, not
    parquet, missing columns). Reads only the footer."""
    path = Path(path)
    if not path.is_file():
        hint = "it is a folder: pass its train.parquet" if path.is_dir() else "no such file"
        raise DataFileError(f"{path}: {hint}; make data with `mapo world make --out DIR` or pass a DeepEyes-style "
                            f"parquet file")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path} is not a parquet file ({exc}); pass a DeepEyes-style parquet "
                            f"(columns {', '.join(REQUIRED_COLUMNS)}, ...)") from exc
    columns = set(parquet.schema_arrow.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataFileError(f"{path} lacks column(s) {', '.join(missing)} of the DeepEyes schema (has: "
                            f"{', '.join(sorted(columns))}); expected prompt, images, data_source, reward_model, "
                            f"extra_info, env_name")
    return parquet


class ParquetTasks(Sequence[Task]):
    """Tasks of a DeepEyes-schema parquet, decoded on access (see the module doc)."""

    def __init__(self, path: str | Path, *, max_tasks: int | None = None, rows: RowConfig | dict | None = None):
        self.path = Path(path)
        self.cfg = rows if isinstance(rows, RowConfig) else RowConfig.model_validate(rows or {})
        self._file = open_parquet(self.path)
        meta = self._file.metadata
        self._starts = [0]
        for g in range(meta.num_row_groups):
            self._starts.append(self._starts[-1] + meta.row_group(g).num_rows)
        self._n = meta.num_rows if max_tasks is None else min(meta.num_rows, max_tasks)
        self._group: tuple[int, pa.Table] | None = None
        self.skipped: dict[int, str] = {}
        """Rows found unusable so far: row index -> why."""

    @property
    def skipped_rows(self) -> int:
        """How many rows have been skipped so far (logged by the trainer as ``skipped_rows``)."""
        return len(self.skipped)

    def __len__(self) -> int:
        return self._n

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as stored (images still encoded)."""
        g = bisect.bisect_right(self._starts, i) - 1
        if self._group is None or self._group[0] != g:
            self._group = (g, self._file.read_row_group(g))
        return self._group[1].slice(i - self._starts[g], 1).to_pylist()[0]

    @overload
    def __getitem__(self, i: int) -> Task: ...

    @overload
    def __getitem__(self, i: slice) -> ParquetTasks: ...

    def __getitem__(self, i):
        if isinstance(i, slice):  # tasks[:n]: the first n rows, still lazy
            start, stop, step = i.indices(self._n)
            if start != 0 or step != 1:
                raise ValueError("ParquetTasks supports only [:n] slices (the first n rows)")
            return self._limited(stop)
        if not -self._n <= i < self._n:
            raise IndexError(f"task {i} of {self._n}")
        i %= self._n
        for offset in range(self._n):
            j = (i + offset) % self._n
            if j in self.skipped:
                continue
            try:
                return _row_task(self.row(j), j, self.path, self.cfg)
            except ValueError as exc:  # ImageError, UnsafePathError, a row without an image
                self.skipped[j] = str(exc)
                log.warning("%s row %d skipped (%d so far): %s", self.path, j, len(self.skipped), exc)
        first = min(self.skipped)
        raise DataFileError(f"{self.path}: none of the {self._n} rows is usable (row {first}: "
                            f"{self.skipped[first]}); fix the file or pass another data.train")

    def _limited(self, n: int) -> ParquetTasks:
        view = object.__new__(ParquetTasks)
        view.__dict__.update(self.__dict__)
        view._n = min(n, self._n)
        return view

    def check_readable(self, probe_rows: int = 8) -> None:
        """Fail early (``DataFileError``) when none of the first ``probe_rows`` rows can be decoded — a file of
        non-image bytes is a user mistake to report before a model loads, not a run of skipped rows."""
        n = min(probe_rows, self._n)
        if n == 0:
            raise DataFileError(f"{self.path}: no rows; make data with `mapo world make --out DIR`")
        errors = []
        for j in range(n):
            try:
                _row_task(self.row(j), j, self.path, self.cfg)
                return
            except ValueError as exc:
                errors.append(str(exc))
        raise DataFileError(f"{self.path}: none of the first {n} rows is usable ({errors[0]}); fix the file or "
                            f"pass another data.train")


def open_tasks(path: str | Path, *, max_tasks: int | None = None, rows: RowConfig | dict | None = None
               ) -> ParquetTasks:
    """The training tasks of ``path`` as a lazy sequence (nothing decoded yet; ``max_tasks`` caps its length)."""
    return ParquetTasks(path, max_tasks=max_tasks, rows=rows)
