"""`mapo sft --data`: a user's multi-turn trajectories with images (JSONL / parquet, docs/sft_data.md)."""

from __future__ import annotations

import base64
import io
import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mapo.models.hf_qwen import load_policy
from mapo.train.sft_data import ChatDataError, load_chat_samples

CALL = '<think>look</think>\n<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 50, 50], ' \
       '"label": "the red circle"}}</tool_call>'


def _b64(color) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (60, 40), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _rows(folder):
    Image.new("RGB", (300, 200), "white").save(folder / "scene.png")
    structured = {"messages": [
        {"role": "system", "content": "You can zoom."},
        {"role": "user", "content": [{"type": "image", "image": "scene.png"},
                                     {"type": "text", "text": "What colour is the circle?"}]},
        {"role": "assistant", "content": CALL},
        {"role": "tool", "content": [{"type": "image", "image": f"data:image/png;base64,{_b64('red')}"}]},
        {"role": "assistant", "content": "<think>red</think>\n<answer>red</answer>"}]}
    placeholders = {"images": ["scene.png", {"bytes": _b64("blue")}], "messages": [
        {"role": "user", "content": "<image>Which shape?"},
        {"role": "assistant", "content": CALL},
        {"role": "user", "content": "<tool_response><image></tool_response>"},
        {"role": "assistant", "content": "<answer>square</answer>"}]}
    return [structured, placeholders] * 3


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def backend(tiny_model_dir):
    return load_policy(tiny_model_dir)


def test_masks_cover_exactly_the_assistant_turns_and_images_match(tmp_path, backend):
    data = _jsonl(tmp_path / "traj.jsonl", _rows(tmp_path))
    samples = load_chat_samples(data, backend, {"image_max_pixels": 12544, "crop_max_pixels": 3136})
    assert len(samples) == 6
    pad = backend.image_token_id
    for s in samples:
        assert len(s.images) == 2
        ids = torch.cat([s.prompt_ids, s.response_ids])
        assert int((ids == pad).sum()) == sum(backend.image_tokens(im) for im in s.images)
        assert not bool((s.response_ids[s.response_mask.bool()] == pad).any())  # pads are never trained
        trained = backend.decode(s.response_ids[s.response_mask.bool()].tolist())
        assert trained.startswith(CALL) and trained.count("<|im_end|>") == 2
        assert "<answer>" in trained and "<tool_response>" not in trained and "assistant\n" not in trained
        observed = backend.decode(s.response_ids[~s.response_mask.bool()].tolist())
        assert "<tool_response>" in observed and "<|im_start|>assistant" in observed
        assert "Which shape" in backend.decode(s.prompt_ids.tolist()) or "circle" in backend.decode(
            s.prompt_ids.tolist())
    assert samples[0].images[0].size != samples[0].images[1].size  # task image vs crop budget


def test_parquet_gives_the_same_samples(tmp_path, backend):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(tmp_path)
    pq.write_table(pa.table({"messages": [json.dumps(r["messages"]) for r in rows],
                             "images": [r.get("images", []) and [json.dumps(i) if isinstance(i, dict) else i
                                                                 for i in r["images"]] for r in rows]}),
                   tmp_path / "traj.parquet")
    a = load_chat_samples(_jsonl(tmp_path / "t.jsonl", rows[:1]), backend)
    b = load_chat_samples(tmp_path / "traj.parquet", backend, max_rows=1)
    assert torch.equal(a[0].response_ids, b[0].response_ids) and torch.equal(a[0].response_mask, b[0].response_mask)


@pytest.mark.parametrize("bad, match", [
    ({"messages": [{"role": "bot", "content": "hi"}]}, "row 2 message 0: role must be one of"),
    ({"messages": [{"role": "user", "content": "<image> and <image>"}, {"role": "assistant", "content": "x"}],
      "images": ["scene.png"]}, "row 2 message 0: an image placeholder without an image"),
    ({"messages": [{"role": "user", "content": "hi"}], "images": []}, "row 2: no assistant message"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "image": "missing.png"}]},
                   {"role": "assistant", "content": "x"}]}, "row 2 message 0 image: cannot read file"),
])
def test_a_malformed_row_is_a_clear_error_naming_the_row(tmp_path, backend, bad, match):
    rows = _rows(tmp_path)[:2] + [bad]
    with pytest.raises(ChatDataError, match=match):
        load_chat_samples(_jsonl(tmp_path / "bad.jsonl", rows), backend)


def test_cli_reports_a_malformed_row_in_one_line(tmp_path, tiny_model_dir):
    from mapo.cli import app

    (tmp_path / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{not json\n')
    res = CliRunner().invoke(app, ["sft", "--data", str(tmp_path / "bad.jsonl"), "--set",
                                   f"model.path={tiny_model_dir}", "--set", f"out_dir={tmp_path / 'run'}"])
    flat = "".join(res.output.replace("│", "").split())  # the message as rich wraps it in a box
    assert res.exit_code != 0 and "bad.jsonlrow0:noassistantmessage" in flat


@pytest.mark.slow
def test_sft_on_user_trajectories_lowers_the_loss(tmp_path, tiny_model_dir):
    from mapo.train.config import SFTConfig, load_config
    from mapo.train.metrics_log import read_metrics
    from mapo.train.sft import run_sft

    data = _jsonl(tmp_path / "traj.jsonl", _rows(tmp_path))
    cfg = load_config(SFTConfig, None, [
        f"model.path={tiny_model_dir}", f"out_dir={tmp_path / 'run'}", f"data={data}", "epochs=4",
        "batch_size=3", "micro_batch_size=3", "progress=false", "save_every=100", "optim.lr=5e-3",
        "optim.warmup_steps=1", "protocol.image_max_pixels=12544", "protocol.crop_max_pixels=3136"])
    final = run_sft(cfg)
    losses = [r["loss"] for r in read_metrics(cfg.out_dir)]
    assert len(losses) == 8 and losses[-1] < 0.7 * losses[0], losses
    assert (final / "config.json").exists()
