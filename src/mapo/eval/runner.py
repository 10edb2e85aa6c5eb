"""The evaluation loop: roll out each benchmark item k times with the training agent loop, score, append.

``run_evaluation`` takes any engine with ``run(tasks, group_size) -> list[Trajectory]`` (the real
``mapo.agent.rollout.RolloutEngine``, or a stub in tests), streams the items, writes one JSONL line per
finished item, and returns the summary (also written to ``summary.json``).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field
from tqdm import tqdm

from mapo.agent.call_scores import score_tool_calls
from mapo.data.benchmarks.items import ItemError
from mapo.data.boxes import DEFAULT_HIT_FRACTION
from mapo.data.task import Task
from mapo.eval.media import item_dir_name, save_thumbnail
from mapo.eval.records import ResultsFile, item_header, sample_record
from mapo.eval.scoring import summarize
from mapo.rewards import RewardConfig

RESULTS_NAME = "results.jsonl"
SUMMARY_NAME = "summary.json"


class Engine(Protocol):
    def run(self, tasks: list[Task], group_size: int = 1) -> list[Any]: ...


class EvalConfig(BaseModel):
    """How an evaluation samples, batches and records (generation settings live in ``ProtocolConfig``)."""

    k: int = Field(1, ge=1, description="Samples per item; accuracy is Avg@k (mean correctness over the k).")
    batch_items: int = Field(4, ge=1, description="Items rolled out together (x k trajectories per generate call).")
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many items (resumed ones included).")
    hit_fraction: float = Field(DEFAULT_HIT_FRACTION, gt=0, le=1,
                                description="Share of a target box a zoom must cover to count as a hit.")
    save_media: bool = Field(True, description="Write a thumbnail of each image and every crop for the viewer.")
    thumb_max_side: int = Field(1024, ge=64, description="Longest side of the saved image thumbnails (pixels).")
    crop_max_side: int = Field(384, ge=32, description="Longest side of the saved crops (pixels).")


def _batches(items: Iterable[Task | ItemError], size: int) -> Iterator[list[Task | ItemError]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _save_media(record: dict, task: Task, trajs: list[Any], out_dir: Path, cfg: EvalConfig) -> None:
    folder = Path("media") / item_dir_name(task.id)
    save_thumbnail(task.image, out_dir / folder / "image.jpg", cfg.thumb_max_side)
    record["image"] = (folder / "image.jpg").as_posix()
    for sample, traj in zip(record["samples"], trajs):
        for entry, turn in zip(sample["turns"], traj.turns):
            crop = turn.tool.crop if turn.tool is not None and turn.tool.ok else None
            crop = crop if crop is not None else (turn.tool.observation if turn.tool is not None else None)
            if crop is not None:
                rel = folder / f"s{traj.sample_index}_t{turn.index}.jpg"
                save_thumbnail(crop, out_dir / rel, cfg.crop_max_side)
                entry["crop"] = rel.as_posix()


def run_evaluation(engine: Engine, items: Iterable[Task | ItemError], out_dir: str | Path, *, bench: str,
                   cfg: EvalConfig | None = None, reward_cfg: RewardConfig | None = None, verifier: Any = None,
                   total: int | None = None, progress: bool = True, run_info: dict | None = None) -> dict:
    """Evaluate ``items`` (already filtered of finished ids, see ``ResultsFile.finished_ids``) into
    ``out_dir/results.jsonl`` and return the summary of **all** records there (resumed ones included).

    An ``ItemError`` becomes a failed record (scored wrong). A trajectory batch that raises is retried item by
    item so one bad item cannot sink its neighbours; an item that still raises becomes a failed record.
    """
    cfg = cfg or EvalConfig()
    reward_cfg = reward_cfg or RewardConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ResultsFile(out_dir / RESULTS_NAME)
    done = len(store.finished_ids())
    budget = None if cfg.limit is None else max(0, cfg.limit - done)
    if budget is not None:
        items = islice(items, budget)
        total = budget if total is None else min(total, budget)
    bar = tqdm(total=total, desc=f"eval {bench}", unit="item", disable=not progress, dynamic_ncols=True)
    for batch in _batches(items, cfg.batch_items):
        tasks = [t for t in batch if isinstance(t, Task)]
        outcomes = {task.id: (trajs, error) for task, trajs, error in _rollout_groups(engine, tasks, cfg.k)}
        for item in batch:  # records keep the benchmark's order
            record = item_header(item, bench)
            if isinstance(item, Task):
                trajs, error = outcomes[item.id]
                if error is not None:
                    record["error"] = error
                else:
                    scored = score_tool_calls(trajs, verifier)
                    for i, traj in enumerate(trajs):
                        record["samples"].append(sample_record(traj, item, reward_cfg, scored.by_turn(i),
                                                               cfg.hit_fraction))
                    if cfg.save_media:
                        _save_media(record, item, trajs, out_dir, cfg)
            store.append(record)
        bar.update(len(batch))
    bar.close()
    summary = summarize(store.read())
    summary["bench"] = bench
    if run_info:
        summary["run"] = run_info
    (out_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
    return summary


def _rollout_groups(engine: Engine, tasks: list[Task], k: int) -> Iterator[tuple[Task, list[Any], str | None]]:
    """(task, its k trajectories, error message or None) for each task, batched when possible."""
    if not tasks:
        return
    try:
        trajs = engine.run(tasks, group_size=k)
    except Exception:  # noqa: BLE001 - isolate the failing item below, then report it per item
        if len(tasks) == 1:
            yield tasks[0], [], f"rollout failed: {traceback.format_exc(limit=3).strip().splitlines()[-1]}"
            return
        for task in tasks:
            yield from _rollout_groups(engine, [task], k)
        return
    by_task: dict[str, list[Any]] = {}
    for traj in trajs:
        by_task.setdefault(traj.task.id, []).append(traj)
    for task in tasks:
        yield task, sorted(by_task.get(task.id, []), key=lambda t: t.sample_index), None
