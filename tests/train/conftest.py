"""Shared tiny fixtures for the trainer tests: a few small world tasks, a ~1k-token tokenizer, a tiny random
Qwen2.5-VL checkpoint, a scripted-generation policy (real model log-probs, scripted texts so that tool calls
happen from step 1) and a cheap deterministic stand-in verifier."""

from __future__ import annotations

import json

import pytest
import torch

from mapo.agent.protocol import ProtocolConfig, system_prompt


def zoom_text(box, label: str) -> str:
    args = {"bbox_2d": [int(v) for v in box], "label": label}
    return f"<think>look</think>\n<tool_call>{json.dumps({'name': 'image_zoom_in_tool', 'arguments': args})}</tool_call>"


@pytest.fixture(scope="session")
def world_tasks():
    from mapo.data.world import generate_tasks
    from mapo.data.world.config import WorldConfig

    cfg = WorldConfig(canvas_width=448, canvas_height=448, clutter=4, n_train=6, n_val=2, n_test=2)
    return generate_tasks(cfg, "train", 6)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, world_tasks):
    from mapo.models.zoo import build_tiny_model, train_tokenizer

    texts = [system_prompt(ProtocolConfig())] + [t.question + "\n" + t.options_block() for t in world_tasks]
    texts += [zoom_text([1, 2, 300, 400], "the red circle") + "<answer>B</answer>"] * 5
    tok = train_tokenizer(texts, vocab_size=400)
    out = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model(out, tok, family="qwen2_5_vl", size="tiny", seed=0)
    return out


class ScriptedGenerate:
    """A real policy whose *texts* come from a seeded script: tool calls (good, off-target, malformed) and
    answers happen from the first step, while log-probs and gradients are the real model's. Randomness comes
    from torch's global RNG, so a resumed run replays exactly."""

    def __init__(self, real):
        from mapo.models.scripted import ScriptedBackend

        self.real = real
        self.scripted = ScriptedBackend(like=real, script=self._text)

    def _text(self, ctx) -> str:
        r = torch.randint(0, 6, (1,)).item()
        if ctx.turn == 0 and r < 4:
            x, y = torch.randint(0, 300, (2,)).tolist()
            return zoom_text([x, y, x + 100, y + 100], ["the red circle", "a blue square"][r % 2])
        if r == 4:
            return "<think>hmm</think><tool_call>{bad json</tool_call>"
        return f"<think>so</think>\n<answer>{'ABCD'[torch.randint(0, 4, (1,)).item()]}</answer>"

    def generate(self, contexts, max_new_tokens, stop, temperature=1.0):
        return self.scripted.generate(contexts, max_new_tokens, stop, temperature)

    def __getattr__(self, name):
        return getattr(self.real, name)


class StubVerifier:
    """Deterministic scores in [-1, 1] from the label and the crop's mean brightness (no training needed)."""

    def __init__(self):
        self.calls = 0

    def score(self, texts, images):
        self.calls += 1
        out = [((len(t) % 5) / 5.0) * 2 - 1 + (sum(im.convert("L").resize((4, 4)).get_flattened_data()) / (16 * 255)) * 0.5
               for t, im in zip(texts, images)]
        return torch.tensor(out).clamp(-1, 1)


@pytest.fixture
def scripted_policy():
    """``scripted_policy(model_dir)`` -> a ScriptedGenerate over the real tiny model."""
    from mapo.models.hf_qwen import load_policy

    return lambda path: ScriptedGenerate(load_policy(path))


@pytest.fixture
def stub_verifier():
    return StubVerifier


@pytest.fixture
def scripted_over():
    """``scripted_over(backend)`` -> a ScriptedGenerate over an already loaded backend (any dtype/loader)."""
    return ScriptedGenerate
