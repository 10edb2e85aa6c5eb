"""Issue #19.8: a user's mistake prints one line naming the input and the fix, exits with code 2, and is found
before anything expensive loads (the model loader is booby-trapped here: reaching it fails the test)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mapo.cli import app


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    from mapo.models import hf_qwen

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(hf_qwen, "load_policy", no_loading)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (tmp_path / "notes.parquet").write_text("this is not parquet")
    rows = [{"prompt": [{"role": "user", "content": "<image>Q?"}], "images": [{"bytes": b"GIF89a-not-really"}],
             "data_source": "x", "reward_model": {"ground_truth": "A", "style": "rule"}, "extra_info": {"index": 0}}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "noimage.parquet")
    (tmp_path / "bad_protocol.yaml").write_text("max_turnz: 3\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "hr.tsv").write_text("index\tquestion\n0\tq\n")
    (tmp_path / "vstar").mkdir()
    return tmp_path


T = "train --set run.progress=false --set model.path={m}/model --set data.train={m}/noimage.parquet"
E = "eval --model {m}/model --bench hrbench --out {m}/out"
CASES = [
    # (command line, substrings of the one line printed)
    (f"{T} --set rollout.protocol.max_turnz=3", ["rollout.protocol.max_turnz", "Extra inputs", "fix the key"]),
    (f"{T} --set algorithm.bta=0.2", ["algorithm.bta", "--show-config"]),
    ("train --config {m}/list.yaml", ["list.yaml", "top level must be a mapping"]),
    (f"{T} --set data.train={{m}}/missing.parquet", ["missing.parquet", "no such file", "mapo world make"]),
    (f"{T} --set data.train={{m}}/notes.parquet", ["notes.parquet", "is not a parquet file"]),
    (f"{T}", ["noimage.parquet", "none of the first 1 rows is usable", "corrupt"]),
    (f"{T} --set model.path={{m}}/nowhere", ["model.path", "nowhere", "no such folder", "config.json"]),
    (f"{T} --set model.path={{m}}", ["model.path", "no config.json"]),
    ("sft --set model.path={m}/model --set train={m}/missing.parquet", ["train:", "missing.parquet", "no such file"]),
    ("eval --model {m}/nowhere --bench vstar --data {m}/vstar", ["--model", "nowhere", "no such folder"]),
    (f"{E} --data {{m}}/hr.tsv", ["hr.tsv", "missing column", "--bench"]),
    (f"{E} --data {{m}}/missing.tsv", ["missing.tsv", "does not exist", "--data"]),
    (f"{E} --data {{m}}/hr.tsv --protocol {{m}}/bad_protocol.yaml", ["max_turnz", "valid fields", "max_turns"]),
    (f"{E} --data {{m}}/hr.tsv --protocol {{m}}/nope.yaml", ["--protocol", "nope.yaml", "no such file"]),
    (f"{E} --data {{m}}/hr.tsv --reward-preset bogus", ["--reward-preset", "bogus", "accuracy"]),
    ("eval --model {m}/model --bench nosuch --data {m}/hr.tsv", ["unknown benchmark", "vstar"]),
    ("eval --model {m}/model --bench vstar --data {m}/vstar --out {m}/o2", ["test_questions.jsonl", "download"]),
    ("view {m}/nothing_here", ["nothing_here"]),
]


@pytest.mark.parametrize("line,expected", CASES, ids=[c[0].split()[0] + ":" + c[1][0] for c in CASES])
def test_a_mistake_prints_one_line_and_exits_2(inputs, line, expected):
    result = CliRunner().invoke(app, line.format(m=inputs).split())
    printed = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("note:")]
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert len(printed) == 1 and printed[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in printed[0], printed[0]
    assert "Traceback" not in result.output


def test_a_corrected_data_path_can_reuse_the_same_out_folder(inputs):
    """A failed start must not write run.json: the rerun with the right --data would be refused as 'made with
    other settings'."""
    line = E.format(m=inputs) + f" --data {inputs}/hr.tsv"
    assert CliRunner().invoke(app, line.split()).exit_code == 2
    assert not (inputs / "out" / "run.json").exists()
