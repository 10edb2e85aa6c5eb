"""DeepEyes-schema parquet: byte-identical writes, lossless round trip, real DeepEyes rows, clear errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mapo.data.images import encode_png, image_hash
from mapo.data.parquet import load_tasks, parse_options, write_tasks
from mapo.data.world import WorldConfig, generate_tasks

CFG = WorldConfig(canvas_width=448, canvas_height=448, clutter=8)


def test_same_seed_gives_byte_identical_parquet(tmp_path):
    a = write_tasks(generate_tasks(CFG, "val", n=6), tmp_path / "a.parquet")
    b = write_tasks(generate_tasks(CFG, "val", n=6), tmp_path / "b.parquet")
    c = write_tasks(generate_tasks(CFG.model_copy(update={"seed": 3}), "val", n=6), tmp_path / "c.parquet")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_round_trip_keeps_everything_a_task_knows(tmp_path):
    tasks = generate_tasks(CFG, "train", n=5)
    loaded = load_tasks(write_tasks(tasks, tmp_path / "t.parquet"))
    assert len(loaded) == 5
    for t, u in zip(tasks, loaded):
        assert image_hash(t.image) == image_hash(u.image)
        assert (u.id, u.question, u.options, u.answer, u.category, u.source) == (
            t.id,
            t.question,
            t.options,
            t.answer,
            t.category,
            t.source,
        )
        assert u.targets == t.targets and u.target_names == t.target_names
        assert u.extra["objects"] == t.extra["objects"] and u.extra["query"] == t.extra["query"]
    table = pq.read_table(tmp_path / "t.parquet")
    row = table.slice(0, 1).to_pylist()[0]
    assert row["prompt"][0]["role"] == "system" and row["prompt"][1]["content"].startswith("<image>")
    assert tasks[0].question in row["prompt"][1]["content"]
    assert row["reward_model"] == {"ground_truth": tasks[0].answer, "style": "rule"}
    assert row["env_name"] == "visual_toolbox_v2" and row["data_source"] == "mapo_world"
    assert row["extra_info"]["index"] == 0
    # a patterned object keeps its pattern (what the expert says the zoom shows depends on it)
    pat = generate_tasks(CFG.model_copy(update={"families": ["attribute"], "attribute_asks": ["pattern"]}),
                         "train", n=3)
    back = load_tasks(write_tasks(pat, tmp_path / "p.parquet"))
    assert [u.extra["objects"] for u in back] == [t.extra["objects"] for t in pat]
    assert all(u.extra["objects"][0]["pattern"] for u in back)


def _deepeyes_file(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_reads_real_deepeyes_rows(tmp_path):
    png = encode_png(generate_tasks(CFG, "test", n=1)[0].image)
    question = "What is the colour of the cup?\n(A) red\n(B) blue\n(C) green\n(D) white"
    rows = [
        {
            "prompt": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "<image>\n" + question},
            ],
            "images": [{"bytes": png}],
            "data_source": "vstar",
            "reward_model": {"ground_truth": "B", "style": "rule"},
            "extra_info": {"question": question, "index": 7},
            "env_name": "visual_toolbox_v2",
        },
        {
            "prompt": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "<image>\nHow many?"},
            ],
            "images": [{"bytes": png}],
            "data_source": "chart",
            "reward_model": {"ground_truth": "12", "style": "rule"},
            "extra_info": {"question": "How many?", "index": 8},
            "env_name": "visual_toolbox_v2",
        },
    ]
    first, second = load_tasks(_deepeyes_file(tmp_path / "de.parquet", rows))
    assert first.question == "What is the colour of the cup?"
    assert first.options == ["red", "blue", "green", "white"] and first.answer == "B"
    assert first.answer_text == "blue" and first.id == "vstar-7" and first.targets == []
    assert second.options == [] and second.answer == "12" and second.question == "How many?"


def test_option_parsing_needs_consecutive_letters():
    assert parse_options("Q?\n(A) x\n(B) y")[1] == ["x", "y"]
    assert parse_options("Q?\nA. x\nB. y\nC. z")[1] == ["x", "y", "z"]
    assert parse_options("Q?\n(B) y\n(C) z")[1] == []


def test_errors_name_the_file_and_the_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        load_tasks(tmp_path / "nope.parquet")
    bad = _deepeyes_file(tmp_path / "bad.parquet", [{"prompt": "x", "reward_model": {"ground_truth": "A"}}])
    with pytest.raises(ValueError, match=r"bad.parquet lacks column\(s\) images"):
        load_tasks(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="junk.parquet is not a readable parquet"):
        load_tasks(junk)


def test_parallel_export_writes_the_same_bytes(tmp_path):
    from mapo.data.parquet import write_rows
    from mapo.data.world.export import make_pool, task_rows

    cfg = WorldConfig(canvas_width=256, canvas_height=256, clutter=2)
    serial = write_rows(task_rows(cfg, "test", 16), tmp_path / "serial.parquet")
    with make_pool(2) as pool:
        parallel = write_rows(task_rows(cfg, "test", 16, pool), tmp_path / "parallel.parquet")
    assert serial.read_bytes() == parallel.read_bytes()
    assert (
        serial.read_bytes()
        == write_tasks(generate_tasks(cfg, "test", 16), tmp_path / "t.parquet").read_bytes()
    )
