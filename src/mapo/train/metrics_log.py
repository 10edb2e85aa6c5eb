"""Where metrics go: one JSON line per step (the record the report and `mapo compare` read), TensorBoard
scalars, and a progress bar that shows the few numbers a person watches."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:  # typing.Self is Python 3.11+; mapo supports 3.10
    from typing_extensions import Self


def _clean(value: Any) -> Any:
    """JSON-safe scalar: tensors and numpy numbers become floats; NaN/inf become None (JSON has neither)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLogger:
    """Appends ``{"step": s, **metrics}`` to ``out_dir/metrics.jsonl`` and mirrors numbers to TensorBoard.

    ``resume_from_step``: lines with ``step > resume_from_step`` already in the file (written after the last
    checkpoint of an interrupted run) are dropped, so a resumed run's log has each step exactly once.
    """

    def __init__(self, out_dir: str | Path, *, total_steps: int, start_step: int = 0, progress: bool = True,
                 tensorboard: bool = True, desc: str = "train", show: tuple[str, ...] = ()):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)
        self._file = self.path.open("a")
        self._writer = None
        if tensorboard:
            try:
                # imported here: ~1 s, and only runs that log to TensorBoard need it
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=start_step + 1)
            except ImportError:  # tensorboard is a dependency, but logging must never stop training
                self._writer = None
        self._bar = tqdm(total=total_steps, initial=start_step, desc=desc, disable=not progress, dynamic_ncols=True)
        self._show = show

    def _truncate_after(self, step: int) -> None:
        """Keep the records up to ``step``; a torn line (a run killed mid-write) is dropped, not fatal."""
        if not self.path.exists():
            return
        kept = [line for line, record in _lines(self.path) if record.get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any], *, advance: bool = True) -> dict[str, Any]:
        """Record one step's metrics; returns the cleaned record. ``advance=False``: a record that is not a
        training step (the evaluation before the first one) leaves the progress bar where it is."""
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(key, value, step)
        shown = {k: f"{record[k]:.3g}" for k in self._show if isinstance(record.get(k), (int, float))}
        self._bar.set_postfix(shown, refresh=False)
        if advance:
            self._bar.update(1)
        return record

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a run directory or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics log; run `mapo train` (or `mapo sft`) with this out_dir first")
    return _records(path)


def _lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) of a ``metrics.jsonl``, skipping a line that is not a JSON object (the torn last line of
    a run killed while writing it)."""
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append((line, record))
    return out


def _records(path: Path) -> list[dict[str, Any]]:
    return [record for _, record in _lines(path)]
