"""The embedded LiT verifier: MiniLM text tower offline, save/load round trip, the training command."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from mapo.verifier import VerifierConfig, load_verifier
from mapo.verifier.embedded import EmbeddedVerifier, load_lit, save_lit
from mapo.verifier.hf_clip import VerifierLoadError
from mapo.verifier.lit import LiTConfig, LiTModel, letterbox
from mapo.verifier.text_tower import shared_text_encoder

SMALL = LiTConfig(image_size=32, stages=[(8, 3, 2), (16, 3, 2)], embed_dim=16)


def test_minilm_loads_offline_and_ranks_paraphrases_first():
    enc = shared_text_encoder("cpu")
    e = enc.encode(["a red circle with the digit 7", "one circle painted red that carries a seven",
                    "a green square marked 2"])
    assert e.shape == (3, 384)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))
    assert e[0] @ e[1] > e[0] @ e[2]


def test_minilm_truncates_long_texts():
    enc = shared_text_encoder("cpu", 8)
    a, b = enc.encode(["red circle " * 3 + "with the digit 7", "red circle " * 3 + "near a blue square " * 50])
    torch.testing.assert_close(a, b)  # identical first 8 word pieces (incl. [CLS], [SEP])


def test_letterbox_keeps_aspect_ratio():
    wide = Image.new("RGB", (40, 10), (255, 0, 0))
    boxed = letterbox(wide, 32, pad_value=0)
    assert boxed.size == (32, 32)
    assert boxed.getpixel((16, 16)) == (255, 0, 0) and boxed.getpixel((16, 2)) == (0, 0, 0)


def test_save_load_round_trip_scores_identically(tmp_path, crops):
    torch.manual_seed(0)
    model = LiTModel(SMALL).eval()
    save_lit(model, tmp_path / "v", metadata={"note": "untrained"})
    assert json.loads((tmp_path / "v" / "verifier_config.json").read_text())["training"] == {"note": "untrained"}
    cfg = VerifierConfig(backend="embedded", path=tmp_path / "v", cache_size=0)
    texts = ["a red circle", "the small blue square with the digit 7", "x", "object", "image", "green"]
    direct = EmbeddedVerifier(cfg, model=model).score(texts, crops)
    loaded = load_verifier(cfg).score(texts, crops)
    torch.testing.assert_close(direct, loaded)
    torch.testing.assert_close(load_lit(tmp_path / "v").state_dict()["text_proj.weight"],
                               model.state_dict()["text_proj.weight"])


def test_embedded_batched_equals_unbatched(tmp_path, crops):
    save_lit(LiTModel(SMALL).eval(), tmp_path / "v")
    texts = ["a red circle", "blue square", "green", "the digit 7", "object", "image"]
    batched = load_verifier(backend="embedded", path=tmp_path / "v", batch_size=64, cache_size=0)
    single = load_verifier(backend="embedded", path=tmp_path / "v", batch_size=1, cache_size=0)
    torch.testing.assert_close(batched.score(texts, crops),
                               torch.cat([single.score([t], [c]) for t, c in zip(texts, crops)]),
                               atol=1e-5, rtol=1e-4)


def test_missing_embedded_verifier_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(VerifierLoadError, match=r"nowhere.*mapo verifier train"):
        load_verifier(backend="embedded", path=tmp_path / "nowhere")


def test_train_command_writes_a_loadable_verifier(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mapo.cli import app

    monkeypatch.setenv("MAPO_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "trained"
    result = CliRunner().invoke(app, ["verifier", "train", "--out", str(out), "--steps", "2", "--no-eval",
                                      "--set", "batch_size=8", "--set", "image_size=32",
                                      "--set", "objects_per_task=4", "--set", "reader_warmup_steps=2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "verifier_config.json").read_text())["training"]
    assert summary["steps_done"] == 2 and summary["config"]["batch_size"] == 8
    assert set(summary["reader_warmup_accuracy"]) == set(summary["probe_accuracy"]) == {"colour", "shape", "digit"}
    assert (tmp_path / "cache" / "verifier_text_bank.safetensors").is_file()
    scores = load_verifier(backend="embedded", path=out).score(["a red circle"], [Image.new("RGB", (50, 40))])
    assert scores.shape == (1,) and -1 <= scores.item() <= 1


def test_train_command_refuses_unknown_fields(tmp_path):
    from typer.testing import CliRunner

    from mapo.cli import app

    result = CliRunner().invoke(app, ["verifier", "train", "--out", str(tmp_path), "--set", "stepz=3"])
    assert result.exit_code != 0 and "stepz" in result.output
