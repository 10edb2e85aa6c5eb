"""The text-only LM warm start: the layout it trains on, and that it learns to repeat what the question names."""

from __future__ import annotations

import json
import random

import torch

from mapo.models.warmup import dialogue_ids, warm_up_language_model
from mapo.models.zoo import build_tiny_model, train_tokenizer

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "star"]


def _examples(n: int, seed: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        c, s = rng.choice(COLOURS), rng.choice(SHAPES)
        out.append((f"What digit is on the {c} {s}?", [f"<think>I look for the {c} {s}.</think>",
                                                      "<answer>A</answer>"]))
    return out



def test_dialogue_layout_masks_everything_but_the_assistant_turns():
    tok = train_tokenizer([u + "".join(t) for u, t in _examples(50, 0)], vocab_size=400)
    ids, mask = dialogue_ids(tok, "What is it?", ["<think>a</think>", "<answer>B</answer>"])
    assert len(ids) == len(mask)
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>user\nWhat is it?<|im_end|>\n<|im_start|>assistant\n<think>a</think>")
    assert "<tool_response></tool_response>" in text and text.endswith("<answer>B</answer><|im_end|>")
    learned = tok.decode([i for i, m in zip(ids, mask) if m])
    assert learned == "<think>a</think><answer>B</answer><|im_end|>"


def test_warm_up_teaches_copying_and_writes_the_checkpoint_back(tmp_path):
    train = _examples(400, 1)
    tok = train_tokenizer([u + "".join(t) for u, t in train], vocab_size=400)
    path = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", seed=0)
    before = (path / "model.safetensors").read_bytes()

    def copy_nll(model_dir) -> float:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
        total, n = 0.0, 0
        for user, turns in _examples(24, 99):  # held-out questions
            ids, _ = dialogue_ids(tok, user, turns)
            colour = user.split()[-2]
            pos = tok.decode(ids).index(f"for the {colour}")
            # the token that starts the colour inside the think text
            prefix = next(k for k in range(1, len(ids)) if len(tok.decode(ids[:k])) > pos + len("for the"))
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([ids])).logits[0, prefix - 1].log_softmax(-1)
            total -= float(logp[ids[prefix]])
            n += 1
        return total / n

    summary = warm_up_language_model(path, train, steps=150, batch_size=32, lr=3e-3, progress=False)
    assert (path / "model.safetensors").read_bytes() != before
    assert json.loads((path / "mapo_model.json").read_text())["warmup"]["steps"] == 150
    assert summary["last_loss"] < summary["first_loss"]
    # the colour is one of six: guessing costs log(6) = 1.8 nats; copying from the question costs ~0
    assert copy_nll(path) < 0.5
