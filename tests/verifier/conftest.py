"""Tiny randomly initialised CLIP / SigLIP checkpoints and crops, built in tmp dirs (no hub, no world)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

WORDS = ["a", "the", "small", "red", "blue", "green", "circle", "square", "triangle", "with", "digit", "letter",
         "object", "image", "7", "3", "k"]


def tiny_tokenizer(pad="<pad>", eos="</s>", bos="<s>"):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([pad, "<unk>", bos, eos] + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, unk_token="<unk>", bos_token=bos,
                                   eos_token=eos)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    out = tmp_path_factory.mktemp("tiny_clip")
    tok = tiny_tokenizer()
    text = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 16, "eos_token_id": tok.eos_token_id,
            "bos_token_id": tok.bos_token_id, "pad_token_id": tok.pad_token_id}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(out)
    tok.save_pretrained(out)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    out = tmp_path_factory.mktemp("tiny_siglip")
    tok = tiny_tokenizer()
    text = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(out)
    tok.save_pretrained(out)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


@pytest.fixture
def crops():
    """Six distinct random RGB crops of different sizes."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (20 + 7 * i, 30 + 5 * i, 3), dtype=np.uint8)) for i in range(6)]
