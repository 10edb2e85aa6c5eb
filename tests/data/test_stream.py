"""Issue #17.3: DeepEyes-47k as a stream — rows decoded when a step samples them, max_tasks before any
decoding, a bad row skipped and counted, DeepEyes' placeholder and instructions replaced by our prompt."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mapo.data.parquet import SCHEMA, RowConfig, clean_question
from mapo.data.stream import DataFileError, open_tasks

DEEPEYES_QUESTION = ("<image>\nWhat is the colour of the umbrella?\nThink first, call **image_zoom_in_tool** if "
                     "needed, then answer. Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if "
                     "tools needed)  <answer>...</answer> ")


def _jpeg(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 32, width // 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((width, height), Image.BILINEAR).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def deepeyes_parquet(path, n: int, size=(2246, 1582), bad=(), rows_per_group: int = 16):
    """A DeepEyes-47k-shaped parquet (prompt with <image>, question with DeepEyes' own instructions, free-form
    ground truth); rows in ``bad`` hold bytes that are not an image."""
    image = _jpeg(*size)
    writer = pq.ParquetWriter(path, SCHEMA)
    for start in range(0, n, rows_per_group):
        rows = []
        for i in range(start, min(n, start + rows_per_group)):
            rows.append({"prompt": [{"role": "system", "content": "You are a helpful assistant."},
                                    {"role": "user", "content": DEEPEYES_QUESTION}],
                         "images": [{"bytes": b"not an image" if i in bad else image}],
                         "data_source": "vstar_like", "reward_model": {"ground_truth": "red", "style": "model"},
                         "extra_info": {"question": DEEPEYES_QUESTION, "index": i}, "env_name": "visual_toolbox_v2"})
        writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
    writer.close()
    return path


def test_deepeyes_placeholder_and_instructions_give_way_to_our_prompt(tmp_path):
    tasks = open_tasks(deepeyes_parquet(tmp_path / "d.parquet", 2, size=(64, 48)))
    task = tasks[0]
    assert task.question == "What is the colour of the umbrella?"
    assert task.answer == "red" and not task.options and task.image.size == (64, 48)
    kept = open_tasks(tmp_path / "d.parquet", rows={"question": "dataset"})[0]
    assert "<image>" not in kept.question and "Format strictly as" in kept.question
    assert clean_question("<image>Q?\nformat strictly as: x", RowConfig()) == "Q?"


def test_max_tasks_is_applied_before_any_decoding(tmp_path, monkeypatch):
    from mapo.data import parquet

    decoded = []
    real = parquet.decode_image
    monkeypatch.setattr(parquet, "decode_image", lambda data, **kw: decoded.append(1) or real(data, **kw))
    tasks = open_tasks(deepeyes_parquet(tmp_path / "d.parquet", 40, size=(64, 48)), max_tasks=5)
    assert len(tasks) == 5 and decoded == []
    assert [t.extra["index"] for t in (tasks[4], tasks[0])] == [4, 0] and len(decoded) == 2
    assert len(tasks[:3]) == 3 and decoded == [1, 1]  # slicing is lazy too
    with pytest.raises(IndexError):
        tasks[5]


def test_a_bad_row_is_skipped_and_counted(tmp_path):
    tasks = open_tasks(deepeyes_parquet(tmp_path / "d.parquet", 6, size=(64, 48), bad={2, 3}))
    assert tasks[2].extra["index"] == 4 and tasks.skipped_rows == 2  # the next usable row stands in
    assert tasks[3].extra["index"] == 4 and tasks.skipped_rows == 2  # known bad rows are not re-read
    assert "row 2" in tasks.skipped[2] and "corrupt" in tasks.skipped[2]
    all_bad = open_tasks(deepeyes_parquet(tmp_path / "b.parquet", 3, size=(64, 48), bad={0, 1, 2}))
    with pytest.raises(DataFileError, match="none of the 3 rows is usable"):
        all_bad[1]
    with pytest.raises(DataFileError, match="none of the first 3 rows"):
        all_bad.check_readable()


def test_files_that_are_not_deepeyes_parquet_are_refused_with_the_fix(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        open_tasks(tmp_path / "missing.parquet")
    (tmp_path / "x.parquet").write_text("hello")
    with pytest.raises(DataFileError, match="is not a parquet file"):
        open_tasks(tmp_path / "x.parquet")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "y.parquet")
    with pytest.raises(DataFileError, match="lacks column"):
        open_tasks(tmp_path / "y.parquet")


_ITERATE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from mapo.train.rl import sample_prompts   # the trainer's own sampler (imports before the baseline)
    from mapo.data.stream import open_tasks    # what RLTrainer builds from data.train
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tasks = open_tasks(sys.argv[1], max_tasks=None)
    seen, per_step = set(), 8
    for step in range(1, len(tasks) // per_step + 1):
        batch = [tasks[i] for i in sample_prompts(len(tasks), step, per_step, seed=0)]   # as train_step does
        seen.update(t.extra["index"] for t in batch)
        assert all(t.image.size == (2246, 1582) for t in batch)
        del batch
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (after - before) / 1024, "seen": len(seen), "skipped": tasks.skipped_rows}))
""")


@pytest.mark.slow
def test_deepeyes_rows_at_full_resolution_stream_with_bounded_memory(tmp_path):
    """>= 200 rows of 2246x1582 through the trainer's data path: peak RSS growth under 1 GB (decoded up front
    they are 2.1 GB), and the corrupt row is skipped and counted."""
    path = deepeyes_parquet(tmp_path / "deepeyes.parquet", 208, bad={17})
    out = subprocess.run([sys.executable, "-c", _ITERATE, str(path)], check=False, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result)
    assert result["growth_mb"] < 1024
    assert result["seen"] >= 200 and result["skipped"] == 1
