"""`mapo eval` end to end on the embedded world's parquet with a tiny random-init Qwen2.5-VL, then resumed."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from mapo.cli import app


@pytest.fixture(scope="module")
def world_and_model(tmp_path_factory):
    from mapo.data.parquet import write_tasks
    from mapo.data.world.config import WorldConfig
    from mapo.data.world.generate import generate_tasks
    from mapo.models.zoo import build_tiny_model, train_tokenizer

    root = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(canvas_width=448, canvas_height=448, clutter=4, n_test=3)
    tasks = generate_tasks(cfg, "test")
    data = write_tasks(tasks, root / "test.parquet")
    tokenizer = train_tokenizer([t.question + " " + t.options_block() for t in tasks], vocab_size=400)
    model = build_tiny_model(root / "model", tokenizer)
    protocol = root / "protocol.yaml"
    protocol.write_text(yaml.safe_dump({"max_new_tokens_per_turn": 8, "max_turns": 2}))
    return data, model, protocol, [t.id for t in tasks]


@pytest.mark.slow
def test_eval_runs_end_to_end_and_resumes(world_and_model, tmp_path):
    data, model, protocol, ids = world_and_model
    out = tmp_path / "res"
    base = ["eval", "--model", str(model), "--bench", "world", "--data", str(data), "--out", str(out),
            "--protocol", str(protocol), "--k", "2", "--temperature", "1.0", "--no-progress", "--batch-items", "2"]
    first = CliRunner().invoke(app, base + ["--limit", "1"])
    assert first.exit_code == 0, first.output
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ids[:1]
    second = CliRunner().invoke(app, base)
    assert second.exit_code == 0, second.output
    assert "resuming: 1 item(s)" in second.output
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ids and all(len(r["samples"]) == 2 for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_items"] == 3 and summary["k"] == 2 and 0.0 <= summary["accuracy"] <= 1.0
    assert summary["run"]["protocol"]["max_turns"] == 2
    view = CliRunner().invoke(app, ["view", str(out)])
    assert view.exit_code == 0 and (out / "index.html").is_file()


def test_resume_with_other_settings_is_refused(world_and_model, tmp_path):
    data, model, protocol, _ = world_and_model
    out = tmp_path / "res"
    (out).mkdir()
    (out / "run.json").write_text(json.dumps({"bench": "world", "k": 8}))
    result = CliRunner().invoke(app, ["eval", "--model", str(model), "--bench", "world", "--data", str(data),
                                      "--out", str(out), "--protocol", str(protocol), "--no-progress"])
    assert result.exit_code != 0 and "other settings" in result.output and "--fresh" in result.output


def test_eval_in_bfloat16_and_a_missing_gpu_is_a_clear_error(world_and_model, tmp_path, monkeypatch):
    import torch

    from mapo.models import hf_qwen

    data, model, protocol, _ = world_and_model
    seen = []
    real = hf_qwen.load_policy
    monkeypatch.setattr(hf_qwen, "load_policy", lambda *a, **kw: seen.append(r := real(*a, **kw)) or r)
    base = ["eval", "--model", str(model), "--bench", "world", "--data", str(data), "--protocol", str(protocol),
            "--no-progress", "--limit", "1", "--no-media"]
    ok = CliRunner().invoke(app, base + ["--out", str(tmp_path / "a"), "--dtype", "bfloat16"])
    assert ok.exit_code == 0, ok.output
    assert seen[0].model.dtype == torch.bfloat16 and seen[0].device.type == "cpu"  # auto: no GPU here
    if not torch.cuda.is_available():
        bad = CliRunner().invoke(app, base + ["--out", str(tmp_path / "b"), "--device", "cuda:0"])
        assert bad.exit_code != 0 and "no CUDA GPU" in bad.output and "device=cpu" in bad.output
    bad = CliRunner().invoke(app, base + ["--out", str(tmp_path / "c"), "--dtype", "fp8"])
    assert bad.exit_code != 0 and "dtype='fp8'" in bad.output
