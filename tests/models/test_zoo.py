"""The tiny model zoo and the offline loader: tokenizer, checkpoints of three families, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from mapo.models.hf_qwen import load_policy
from mapo.models.scripted import ScriptedBackend
from mapo.models.zoo import PROTOCOL_TAGS, QWEN_SPECIAL_TOKENS, build_tiny_model, train_tokenizer

TEXTS = ["<think>the sign is small</think><tool_call>{\"name\": \"image_zoom_in_tool\"}</tool_call>",
         "What colour is the square left of the star? (A) red (B) green"] * 10



@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=500)


def test_tokenizer_has_qwen_specials_single_token_tags_and_round_trips(tok):
    for t in QWEN_SPECIAL_TOKENS + PROTOCOL_TAGS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.decode(ids) == t
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = "héllo <answer>(B)</answer> 北京 \n\t{\"bbox_2d\": [1, 2]}"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # byte-level: lossless
    chat = tok.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
                                   tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_learns_the_protocol_so_prompts_stay_short(tok):
    from mapo.agent.protocol import ProtocolConfig, system_prompt

    bare = train_tokenizer(TEXTS, vocab_size=500, include_protocol=False)
    text = system_prompt(ProtocolConfig())
    assert len(tok(text)["input_ids"]) < 0.6 * len(bare(text)["input_ids"])


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_build_and_load_round_trip(tmp_path, tok, family):
    out = build_tiny_model(tmp_path / family, tok, family=family, seed=3)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (out / name).exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == family and cfg["image_token_id"] == tok.convert_tokens_to_ids("<|image_pad|>")
    policy = load_policy(out)
    assert policy.family == family and policy.image_factor == (32 if family == "qwen3_vl" else 28)
    again = build_tiny_model(tmp_path / "again", tok, family=family, seed=3)
    same = load_policy(again)
    for (n, a), (_, b) in zip(policy.model.named_parameters(), same.model.named_parameters()):
        assert torch.equal(a, b), n  # deterministic given the seed
    policy.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "preprocessor_config.json").read_text())["patch_size"] == \
        json.loads((out / "preprocessor_config.json").read_text())["patch_size"]


def test_load_policy_errors_name_the_path_and_what_is_missing(tmp_path, tok):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_policy(tmp_path / "nowhere")
    out = build_tiny_model(tmp_path / "m", tok)
    (out / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"m lacks preprocessor_config.json"):
        load_policy(out)
    bad = tmp_path / "bad"
    build_tiny_model(bad, tok)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model_type"] = "llava"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model_type='llava'"):
        load_policy(bad)


def test_build_rejects_unknown_family_and_size(tmp_path, tok):
    with pytest.raises(ValueError, match="family"):
        build_tiny_model(tmp_path, tok, family="qwen9")
    with pytest.raises(ValueError, match="size"):
        build_tiny_model(tmp_path, tok, size="huge")


def test_scripted_backend_cuts_at_stop_and_limit_with_real_token_ids(tok):
    b = ScriptedBackend(tok, {"t": ["<answer>B</answer> trailing", "<tool_call>{}</tool_call><answer>"],
                              ("t", 1): ["x" * 50]})
    from mapo.agent.backend import Context

    g = b.generate([Context([1], key=("t", 0)), Context([1], key=("t", 0), turn=1), Context([1], key=("t", 1)),
                    Context([1], key=("t", 0), turn=5)], [64, 64, 4, 64], ["</tool_call>", "</answer>"])
    assert g[0].text == "<answer>B</answer>" and g[0].stopped
    assert g[1].text == "<tool_call>{}</tool_call>" and g[1].stopped
    assert len(g[2].ids) == 4 and not g[2].stopped
    assert g[3].ids == [] and not g[3].stopped
    assert b.calls == [4]
    with pytest.raises(NotImplementedError):
        b.sequence_logprobs([])
    with pytest.raises(ValueError, match="vision special token"):
        ScriptedBackend(tok, {"t": ["look <|image_pad|>"]}).generate([Context([1], key=("t", 0))], 8, [])


def test_tokenizer_splits_numbers_into_digits_like_qwen(tok):
    pieces = tok.tokenize('"bbox_2d": [603, 71, 1024, 9]')
    digits = [p for p in pieces if any(ch.isdigit() for ch in p) and p != "2"]
    assert all(len(p.lstrip("Ġ")) == 1 for p in digits), pieces
    assert "".join(p.lstrip("Ġ") for p in digits if p.lstrip("Ġ").isdigit())[:3] == "603"


def test_compact_tools_prompt_is_short_and_names_the_call(tok):
    from mapo.agent.protocol import ProtocolConfig, system_prompt

    compact = system_prompt(ProtocolConfig(tools_prompt="compact"))
    hermes = system_prompt(ProtocolConfig())
    assert "image_zoom_in_tool" in compact and '"bbox_2d"' in compact and '"label"' in compact
    assert len(tok(compact)["input_ids"]) < 0.4 * len(tok(hermes)["input_ids"])
    assert '"label"' not in system_prompt(ProtocolConfig(tools_prompt="compact", mode="description"))


def test_vision_patch_sets_the_tower_and_the_processor_together(tmp_path, tok):
    from PIL import Image

    out = build_tiny_model(tmp_path / "p8", tok, family="qwen3_vl", vision_patch=8)
    policy = load_policy(out)
    assert policy.model.config.vision_config.patch_size == 8 and policy.image_factor == 16
    grid = policy.pixel_inputs([Image.new("RGB", (64, 48), (200, 10, 10))])["image_grid_thw"]
    assert grid.tolist() == [[1, 6, 8]]  # 48/8 x 64/8 patches
    assert json.loads((out / "mapo_model.json").read_text())["vision_patch"] == 8
    for bad, match in ((1, "outside"), (40, "outside")):
        with pytest.raises(ValueError, match=match):
            build_tiny_model(tmp_path / "bad", tok, family="qwen3_vl", vision_patch=bad)
    with pytest.raises(ValueError, match="window"):
        build_tiny_model(tmp_path / "bad", tok, family="qwen2_5_vl", vision_patch=8)
