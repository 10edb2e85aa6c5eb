"""The tiny model zoo: a small byte-level BPE tokenizer with Qwen's special tokens, and tiny random Qwen-VL
checkpoints (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) written as ordinary Hugging Face directories.

No hub access anywhere: a tokenizer is trained on the texts you give, a model is built from a config.
``load_policy`` (in ``mapo.models.hf_qwen``) loads what ``build_tiny_model`` writes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from mapo.agent import protocol

#: Qwen's special tokens, in Qwen's order (ids follow this order after the trained vocabulary).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
#: Protocol tags, added as (non-special) single tokens: stop sequences then end on a token boundary and
#: ``decode`` keeps them in the text the parser reads (Qwen2.5's own vocabulary has <tool_call> likewise).
PROTOCOL_TAGS = [
    "<tool_call>", "</tool_call>", "<think>", "</think>", "<answer>", "</answer>", "<tool_response>",
    "</tool_response>", "<description>", "</description>",
]

#: A Qwen-style chat template: ``<|im_start|>role\n...<|im_end|>\n``; image items become one
#: ``<|vision_start|><|image_pad|><|vision_end|>`` placeholder (the backend expands it to the image's tokens).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")

#: Sizes of the tiny models: text hidden width, layers, heads, vision width, vision depth.
SIZES = {
    "tiny": {"hidden": 128, "layers": 2, "heads": 4, "kv_heads": 2, "vision": 64, "vision_depth": 2},
    "small": {"hidden": 256, "layers": 4, "heads": 4, "kv_heads": 2, "vision": 128, "vision_depth": 2},
}


#: The pre-tokenizer pattern of Qwen2/2.5/3 tokenizers (tokenizer.json): words, single digits, punctuation runs,
#: newlines and spaces.
QWEN_SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                      r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def protocol_texts() -> list[str]:
    """The agent protocol's fixed texts (system prompts of every mode, observation turns), so a small tokenizer
    learns them as few tokens and prompts stay short."""
    out = []
    for mode in ("label", "description"):
        for coords in ("pixel", "relative"):
            for tools in ("hermes", "compact"):
                cfg = protocol.ProtocolConfig(mode=mode, coordinates=coords, tools_prompt=tools)
                out.append(protocol.system_prompt(cfg))
            out.append(protocol.user_text("What is it?", "(A) a\n(B) b", 1000, 800, cfg))
    out.append(protocol.observation_text(1) + protocol.observation_text(0, protocol.error_note("bbox_2d")))
    return out


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, include_protocol: bool = True):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    The result has Qwen's special tokens (``<|im_start|>``, ``<|image_pad|>``, ...), the protocol tags as single
    added tokens, ``<|endoftext|>`` as pad, ``<|im_end|>`` as eos, and a Qwen-style chat template.
    ``vocab_size`` counts the BPE merges' vocabulary (the 256 bytes included); added tokens come on top.
    ``include_protocol`` adds the agent protocol's own texts (system prompt, observation turns) to ``texts``.
    """
    if vocab_size < 300:
        raise ValueError(f"vocab_size={vocab_size} is too small for a byte-level BPE; use at least 300")
    tok = Tokenizer(models.BPE())
    # Qwen2's own split: every digit is a token of its own (a box coordinate is read and written digit by
    # digit, hundreds first), then byte-level encoding of each piece.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = itertools.chain(texts, protocol_texts() * 4 if include_protocol else [])
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None)
    fast.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS})
    fast.add_tokens(PROTOCOL_TAGS)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def _token_ids(tokenizer) -> dict[str, int]:
    ids = {}
    for name in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|im_end|>",
                 "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(name)
        if tid is None or tid == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no {name} token; build it with mapo.models.zoo.train_tokenizer")
        ids[name] = tid
    return ids


#: Each family's own vision patch side in pixels.
FAMILY_PATCH = {"qwen2_vl": 14, "qwen2_5_vl": 14, "qwen3_vl": 16}


def tiny_config(tokenizer, family: str = "qwen2_5_vl", size: str = "tiny", vision_patch: int | None = None):
    """A tiny random-init config of ``family`` whose vocabulary and vision token ids match ``tokenizer``.

    ``vision_patch``: the vision tower's patch side (default: the family's). Smaller patches give the tower finer
    detail at 4x the image tokens per halving (scripts/vision_learnability.py measures what it buys)."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not one of {FAMILIES}")
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {sorted(SIZES)}")
    s = SIZES[size]
    patch = _patch(family, vision_patch)
    ids = _token_ids(tokenizer)
    vocab = len(tokenizer)
    head_dim = s["hidden"] // s["heads"]
    # mrope splits the rotary half-dimension into (temporal, height, width) sections, in Qwen's 2:3:3 ratio.
    half = head_dim // 2
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    text = {"vocab_size": vocab, "hidden_size": s["hidden"], "intermediate_size": 2 * s["hidden"],
                "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"],
                "num_key_value_heads": s["kv_heads"], "max_position_embeddings": 4096,
                "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
                "bos_token_id": ids["<|endoftext|>"]}
    common = {"image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
                  "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
                  "tie_word_embeddings": True}
    if family == "qwen3_vl":
        text.update(head_dim=head_dim, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                        "mrope_section": section, "mrope_interleaved": True})
        vision = {"depth": s["vision_depth"], "hidden_size": s["vision"], "intermediate_size": 2 * s["vision"],
                      "num_heads": 2, "out_hidden_size": s["hidden"], "patch_size": patch,
                      "num_position_embeddings": 256 if patch >= 16 else 1024,
                      "deepstack_visual_indexes": [0]}
        return transformers.Qwen3VLConfig(text_config=text, vision_config=vision, **common)
    text.update(rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section})
    if family == "qwen2_5_vl":
        vision = {"depth": s["vision_depth"], "hidden_size": s["vision"], "intermediate_size": 2 * s["vision"],
                      "num_heads": 2, "out_hidden_size": s["hidden"], "window_size": 56, "patch_size": patch,
                      "fullatt_block_indexes": [s["vision_depth"] - 1]}
        return transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
    vision = {"depth": s["vision_depth"], "embed_dim": s["vision"], "hidden_size": s["hidden"], "num_heads": 2,
                  "mlp_ratio": 2, "patch_size": patch}
    return transformers.Qwen2VLConfig(text_config=text, vision_config=vision, **common)


def _patch(family: str, vision_patch: int | None) -> int:
    if vision_patch is None:
        return FAMILY_PATCH[family]
    if vision_patch < 2 or vision_patch > 32:
        raise ValueError(f"vision_patch={vision_patch} is outside 2..32 pixels; use e.g. 8 or the family's "
                         f"{FAMILY_PATCH[family]}")
    if family == "qwen2_5_vl" and 56 % (2 * vision_patch):
        raise ValueError(f"vision_patch={vision_patch}: Qwen2.5-VL's 56 px attention window needs a patch "
                         "dividing 28 (e.g. 7, 14)")
    return vision_patch


def image_processor_for(family: str, max_pixels: int = 224 * 224, min_pixels: int = 4 * 28 * 28,
                        image_mean: list[float] | None = None, image_std: list[float] | None = None,
                        vision_patch: int | None = None):
    """The PIL (torchvision-free) Qwen2-VL image processor with the family's patch size. ``image_mean`` /
    ``image_std`` (per channel, [0, 1] units) replace the family's constants (see ``mapo.models.image_stats``)."""
    patch = _patch(family, vision_patch)
    kwargs = {"patch_size": patch, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": min_pixels,
                  "max_pixels": max_pixels}
    if family == "qwen3_vl":
        kwargs.update(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    if (image_mean is None) != (image_std is None):
        raise ValueError("pass image_mean and image_std together (or neither: the family's constants)")
    if image_mean is not None:
        if len(image_mean) != 3 or len(image_std) != 3 or min(image_std) <= 0:
            raise ValueError(f"image_mean / image_std must be 3 values each, stds > 0; got {image_mean} / {image_std}")
        kwargs.update(image_mean=list(image_mean), image_std=list(image_std))
    return Qwen2VLImageProcessorPil(**kwargs)


def build_tiny_model(out_dir: str | Path, tokenizer, family: str = "qwen2_5_vl", size: str = "tiny",
                     seed: int = 0, image_mean: list[float] | None = None,
                     image_std: list[float] | None = None, vision_patch: int | None = None) -> Path:
    """Write a random-init ``family`` checkpoint of ``size`` to ``out_dir``: config.json, safetensors weights,
    the tokenizer (with chat template) and preprocessor_config.json. Deterministic given ``seed``.
    ``image_mean`` / ``image_std``: the image processor's normalisation (default: the family's constants; the
    zoo's commands pass the world's own, ``mapo.models.image_stats``). ``vision_patch``: see ``tiny_config``.
    Returns the directory; ``mapo.models.hf_qwen.load_policy(out_dir)`` loads it offline."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = tiny_config(tokenizer, family, size, vision_patch)
    cls = {"qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
           "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
           "qwen3_vl": transformers.Qwen3VLForConditionalGeneration}[family]
    torch.manual_seed(seed)
    model = cls(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    processor = image_processor_for(family, image_mean=image_mean, image_std=image_std, vision_patch=vision_patch)
    processor.save_pretrained(out)
    meta = {"family": family, "size": size, "seed": seed, "image_mean": list(processor.image_mean),
            "image_std": list(processor.image_std), "vision_patch": processor.patch_size}
    (out / "mapo_model.json").write_text(json.dumps(meta, indent=2))
    return out
