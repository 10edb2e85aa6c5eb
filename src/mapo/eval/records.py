"""Per-item result records: built from trajectories, appended to ``results.jsonl`` one item per line.

One line = one benchmark item with its k samples; an item is written only when all its samples are done, so
a run killed at any moment resumes by skipping the ids already in the file (a torn last line is ignored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mapo.data.benchmarks.items import ItemError
from mapo.data.boxes import DEFAULT_HIT_FRACTION, best_iou, zoom_hits_target, zooms_cover_targets
from mapo.data.task import Task
from mapo.rewards import RewardConfig, outcome_reward

Record = dict[str, Any]


def item_header(task: Task | ItemError, bench: str) -> Record:
    """The item fields shared by every sample (question, options, gold answer, targets, groups)."""
    if isinstance(task, ItemError):
        groups = {k: v for k, v in task.groups.items() if v}  # a failed item stays in its cycle / group
        return {"id": task.id, "bench": bench, "category": task.category, "groups": groups, "error": task.message,
                "samples": []}
    groups = {k: task.extra[k] for k in ("cycle_category", "l2_category", "task_type") if task.extra.get(k)}
    return {
        "id": task.id, "bench": bench, "category": task.category, "groups": groups,
        "question": task.question, "options": list(task.options), "answer": task.answer,
        "answer_text": task.answer_text, "targets": [b.as_list() for b in task.targets],
        "target_names": list(task.target_names), "image_size": [task.image.width, task.image.height],
        "error": None, "samples": [],
        # V*: does the shuffled label point at the option the per-image JSON calls right? (None: not checked)
        "label_matches_annotation": task.extra.get("label_matches_annotation"),
    }


def sample_record(traj: Any, task: Task, reward_cfg: RewardConfig, alignments: dict[int, float] | None = None,
                  hit_fraction: float = DEFAULT_HIT_FRACTION) -> Record:
    """One trajectory as a JSON-able record: its turns (kind, label/claim, boxes, errors, alignment, IoU), the
    answer, correctness from ``mapo.rewards``, tool counts and whether its zooms covered the targets.

    ``alignments`` maps turn index -> verifier score for the turns that were scored.
    """
    alignments = alignments or {}
    turns, zooms = [], []
    for turn in traj.turns:
        parsed = turn.parsed
        tool = turn.tool
        entry: Record = {"index": turn.index, "text": turn.text, "kind": parsed.kind,
                         "claim": turn.claim, "error": None}
        if parsed.error is not None and parsed.tool_call is None:
            entry["error"] = f"{parsed.error.code}: {parsed.error.message}"
        if tool is not None:
            entry["box_asked"] = tool.box_asked
            entry["error"] = tool.error
            if tool.box_executed is not None and tool.ok:
                box = tool.box_executed
                entry["box_executed"] = box.as_list()
                entry["source"] = tool.source
                zooms.append(box)
                if task.targets:
                    entry["iou"] = best_iou(box, task.targets)
                    entry["hit"] = zoom_hits_target(box, task.targets, hit_fraction)
        if turn.index in alignments:
            entry["alignment"] = float(alignments[turn.index])
        turns.append(entry)
    response = "".join(t.text for t in traj.turns)
    n_valid = sum(1 for t in traj.turns if t.tool is not None and t.tool.ok)
    reward, info = outcome_reward(traj.answer, task, reward_cfg, response=response, successful_tool_calls=n_valid)
    return {
        "sample": traj.sample_index, "prediction": traj.answer, "choice": info.get("choice"),
        "correct": bool(info["correct"]), "reward": reward, "format_ok": info["format_ok"],
        "stop_reason": traj.stop_reason, "hit_turn_cap": bool(traj.hit_turn_cap),
        "n_tool_calls": len(traj.tool_calls), "n_valid_calls": n_valid,
        "zoom_hit": zooms_cover_targets(zooms, task.targets, hit_fraction), "turns": turns,
    }


class ResultsFile:
    """Append-only JSONL of item records; ``finished_ids`` is what a restarted run skips."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[Record]:
        """All complete records (a torn final line from a killed run is skipped)."""
        return list(self._iter())

    def _iter(self) -> Iterator[Record]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue

    def finished_ids(self) -> set[str]:
        return {str(r["id"]) for r in self._iter()}

    def append(self, record: Record) -> None:
        """Write one record as one line and flush it to disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _repair_torn_tail(self) -> None:
        # A kill mid-write leaves a line without "\n"; start the next record on a fresh line.
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    with self.path.open("a", encoding="utf-8") as out:
                        out.write("\n")
