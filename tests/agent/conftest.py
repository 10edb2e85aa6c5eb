"""Fixtures of the agent tests: a small tokenizer trained on protocol texts, tiny Qwen-VL checkpoints, and
synthetic tasks whose images have distinct pixels everywhere (so a crop off by one pixel is detected)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mapo.data.task import Task


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):  # tests/conftest.py
    yield


def _call_text(bbox, label="the red circle", source=None, think="look closer") -> str:
    args = {"bbox_2d": bbox, "label": label}
    if source is not None:
        args["source"] = source
    return f"<think>{think}</think>\n<tool_call>{json.dumps({'name': 'image_zoom_in_tool', 'arguments': args})}</tool_call>"


def _make_task(task_id: str = "t0", width: int = 640, height: int = 480, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Task(id=task_id, image=Image.fromarray(pixels), question="What colour is the small square?",
                answer="B", options=["red", "green", "blue"])


@pytest.fixture(scope="session")
def tokenizer():
    from mapo.models.zoo import train_tokenizer

    texts = [_call_text([10 * i, 20 + i, 300, 400]) + f"<answer>{'ABC'[i % 3]}</answer>" for i in range(20)]
    return train_tokenizer(texts + [_make_task().question, "(A) red\n(B) green"], vocab_size=800)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory, tokenizer):
    """family -> directory of a tiny random checkpoint."""
    from mapo.models.zoo import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {fam: build_tiny_model(root / fam, tokenizer, family=fam, seed=0) for fam in ("qwen2_5_vl", "qwen3_vl")}


@pytest.fixture(scope="session")
def call_text():
    """``call_text(bbox, label=..., source=None)`` -> the text of a well-formed zoom turn."""
    return _call_text


@pytest.fixture(scope="session")
def make_task():
    """``make_task(id, width, height, seed)`` -> a Task over a random-pixel image."""
    return _make_task
