"""The tiny model's input normalisation: the world's own pixel statistics, written into the checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mapo.data.task import Box, Task
from mapo.models.image_stats import agent_views, view_statistics
from mapo.models.zoo import build_tiny_model, image_processor_for, train_tokenizer


def test_view_statistics_of_known_images():
    red, white = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 32), (255, 255, 255))
    mean, std = view_statistics([red, white], view_side=16)
    assert mean == pytest.approx([1.0, 0.5, 0.5], abs=1e-4)
    assert std == pytest.approx([0.0, 0.5, 0.5], abs=1e-3)
    with pytest.raises(ValueError, match="no images"):
        view_statistics([])


def test_agent_views_are_the_whole_image_and_a_zoom_per_target():
    image = Image.new("RGB", (400, 200), (250, 250, 250))
    task = Task(id="t", image=image, question="q", answer="A", options=["a", "b"],
                targets=[Box(0, 0, 10, 10), Box(380, 180, 400, 200)])
    views = list(agent_views([task], zoom_fraction=0.25))
    assert [v.size for v in views] == [(400, 200), (50, 50), (50, 50)]  # zooms clamped inside the image
    # a pale canvas with one dark object: the zooms weigh the object in, so the std is not the background's alone
    arr = np.asarray(image).copy()
    arr[0:10, 0:10] = 0
    task = Task(id="t", image=Image.fromarray(arr), question="q", answer="A", targets=[Box(0, 0, 10, 10)])
    _, std_whole = view_statistics([task.image])
    _, std_views = view_statistics(agent_views([task]))
    assert min(std_views) > min(std_whole)


def test_build_writes_the_given_normalisation_and_rejects_half_of_it(tmp_path):
    tok = train_tokenizer(["What colour is the square? (A) red"] * 5, vocab_size=300)
    out = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", image_mean=[0.9, 0.9, 0.8],
                           image_std=[0.1, 0.1, 0.2])
    pre = json.loads((out / "preprocessor_config.json").read_text())
    assert pre["image_mean"] == [0.9, 0.9, 0.8] and pre["image_std"] == [0.1, 0.1, 0.2]
    assert json.loads((out / "mapo_model.json").read_text())["image_std"] == [0.1, 0.1, 0.2]
    assert list(image_processor_for("qwen3_vl").image_mean) == [0.5, 0.5, 0.5]  # default: the family's constants
    with pytest.raises(ValueError, match="together"):
        image_processor_for("qwen3_vl", image_mean=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="stds > 0"):
        image_processor_for("qwen3_vl", image_mean=[0.5, 0.5, 0.5], image_std=[0.1, 0.0, 0.1])
