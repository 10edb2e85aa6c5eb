"""Freezing the vision tower: the tower's own weights stop training, its merger and the language model go on."""

from __future__ import annotations

import pytest
import torch

from mapo.models.freeze import freeze_vision_tower, vision_module, vision_tower_parameters
from mapo.models.zoo import build_tiny_model, train_tokenizer


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_freeze_keeps_the_merger_and_language_model_trainable(tmp_path, family):
    from transformers import AutoModelForImageTextToText

    tok = train_tokenizer(["What colour is the image? red blue"] * 20, vocab_size=300)
    model = AutoModelForImageTextToText.from_pretrained(build_tiny_model(tmp_path / family, tok, family=family))
    tower = {id(p) for p in vision_tower_parameters(model)}
    n = freeze_vision_tower(model)
    assert n == sum(p.numel() for p in vision_tower_parameters(model)) > 0
    for name, p in model.named_parameters():
        in_visual = ".visual." in f".{name}"
        assert p.requires_grad == (not in_visual or "merger" in name), name
        assert (id(p) in tower) == (in_visual and "merger" not in name), name
    assert any("merger" in name for name, _ in vision_module(model).named_parameters())


def test_a_model_without_a_vision_tower_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="no vision tower"):
        freeze_vision_tower(torch.nn.Linear(2, 2))
