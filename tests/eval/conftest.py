"""Fixture files in the official benchmark layouts, with tiny images, written per test into tmp_path."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image


def image_bytes(color=(200, 30, 30), size=(40, 30), fmt="JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_table(path: Path, rows: list[dict]) -> Path:
    """A VLMEvalKit-style TSV (pandas-like quoting) or a parquet file, by suffix."""
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
            writer.writeheader()
            writer.writerows(rows)
    return path


@pytest.fixture
def make_vstar(tmp_path):
    """Write a V* folder. Each item: (category, name, options_in_json_order, shuffled_order, bbox)."""

    def make(items, root=None, corrupt=()):
        root = Path(root or tmp_path / "vstar_bench")
        lines = []
        for qid, (category, name, options, order, bbox) in enumerate(items):
            (root / category).mkdir(parents=True, exist_ok=True)
            data = b"\xff\xd8\xff garbage" if name in corrupt else image_bytes(size=(64, 48))
            (root / category / f"{name}.jpg").write_bytes(data)
            (root / category / f"{name}.json").write_text(json.dumps(
                {"question": f"What about {name}?", "options": options, "target_object": [f"obj {name}"],
                 "bbox": [bbox]}))
            shown = [options[i] for i in order]
            label = "ABCD"[order.index(0)]
            text = f"What about {name}?\n" + "\n".join(f"({'ABCD'[i]}) {o}" for i, o in enumerate(shown)) + \
                "\nAnswer with the option's letter from the given choices directly."
            lines.append({"image": f"{category}/{name}.jpg", "text": text, "category": category,
                          "question_id": qid, "label": label})
        (root / "test_questions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        return root

    return make


@pytest.fixture
def files():
    """The helpers above, for tests (pytest's importlib mode cannot import conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(image_bytes=image_bytes, b64=b64, write_table=write_table)


class FakeEngine:
    """Stands in for ``RolloutEngine``: ``policy(task, sample_index) -> list of turn texts``; tool calls are
    executed by cropping the task image at the asked box. Builds the real ``Trajectory`` records."""

    def __init__(self, policy, fail_ids=(), stop_after=None):
        self.policy, self.fail_ids, self.stop_after = policy, set(fail_ids), stop_after
        self.seen: list[str] = []

    def run(self, tasks, group_size=1):
        import torch

        from mapo.agent.parser import parse_turn
        from mapo.agent.trajectory import Trajectory, TurnRecord
        from mapo.agent.zoom import ToolResult
        from mapo.data.task import Box

        if any(t.id in self.fail_ids for t in tasks):
            raise RuntimeError("backend exploded")
        out = []
        for task in tasks:
            if self.stop_after is not None and len(self.seen) >= self.stop_after:
                raise KeyboardInterrupt  # a user pressing Ctrl-C mid-run
            self.seen.append(task.id)
            for g in range(group_size):
                traj = Trajectory(task=task, sample_index=g, prompt_ids=torch.zeros(0, dtype=torch.long))
                for i, text in enumerate(self.policy(task, g)):
                    parsed = parse_turn(text)
                    rec = TurnRecord(index=i, text=text, parsed=parsed, span=(0, 0))
                    if parsed.tool_call:
                        box = Box(*parsed.tool_call.bbox)
                        crop = task.image.crop(tuple(int(v) for v in box.as_list()))
                        rec.tool = ToolResult(box_asked=parsed.tool_call.bbox, box_executed=box, crop=crop,
                                              observation=crop)
                    traj.turns.append(rec)
                    if parsed.answer is not None:
                        traj.answer, traj.stop_reason = parsed.answer, "answer"
                        break
                else:
                    traj.stop_reason, traj.hit_turn_cap = "max_turns", True
                out.append(traj)
        return out


def zoom_text(box, label):
    import json

    call = {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": list(box), "label": label}}
    return f"<think>look closer</think><tool_call>{json.dumps(call)}</tool_call>"


@pytest.fixture
def engine_kit():
    from types import SimpleNamespace

    return SimpleNamespace(FakeEngine=FakeEngine, zoom_text=zoom_text)
