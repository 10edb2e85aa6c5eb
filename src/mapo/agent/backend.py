"""The policy backend interface: what the rollout engine and the trainer need from a model.

A backend turns chat text into token ids (expanding each image placeholder to the image's tokens), generates
a batch of continuations with images, and (for trainable backends) scores given tokens with gradients.
``mapo.models.hf_qwen.HFQwenBackend`` implements it for the Qwen-VL family; ``mapo.models.scripted``
replays given texts through the same tokenizer (deterministic tests, cold-start SFT data).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

IMAGE_PAD = "<|image_pad|>"
#: Tokens a policy must never sample: a sampled image pad would claim an image that does not exist.
VISION_SPECIAL_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


@dataclass
class KVSlot:
    """Where a backend keeps one trajectory's encoded state (its KV cache) between turns. The rollout engine
    makes one per trajectory and drops it when the trajectory ends; a backend that cannot reuse a cache leaves
    it empty and re-encodes the whole context, which gives the same tokens."""

    state: Any = None


@dataclass
class Context:
    """One sequence to continue: token ids so far and the images its placeholders stand for, in order.

    ``key`` identifies the trajectory (task id, sample index) and ``turn`` the assistant turn about to be
    generated; model backends ignore both, the scripted backend uses them to pick its text. ``kv``: the
    trajectory's cache slot (None: encode the whole context, keep nothing)."""

    ids: list[int]
    images: list[Image.Image] = field(default_factory=list)
    key: tuple[str, int] = ("", 0)
    turn: int = 0
    kv: KVSlot | None = None


@dataclass
class Generation:
    """One continuation: generated token ids (the stop sequence included), their sampling log-probs
    (Tensor[n], natural log, under the temperature used), the decoded text, and whether a stop sequence ended it
    (False: cut by ``max_new_tokens``)."""

    ids: list[int]
    logprobs: torch.Tensor
    text: str
    stopped: bool


class PolicyBackend(ABC):
    """Tokenizer-level helpers shared by every backend, plus the two model calls."""

    tokenizer: Any
    patch_size: int = 14
    merge_size: int = 2

    @property
    def image_factor(self) -> int:
        """Side of one image token's cell in pixels (28 for Qwen2/2.5-VL, 32 for Qwen3-VL)."""
        return self.patch_size * self.merge_size

    @property
    def image_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)

    @property
    def suppressed_token_ids(self) -> list[int]:
        ids = [self.tokenizer.convert_tokens_to_ids(t) for t in VISION_SPECIAL_TOKENS]
        return sorted({i for i in ids if i is not None and i != self.tokenizer.unk_token_id})

    def image_grid(self, image: Image.Image) -> tuple[int, int, int]:
        """(t, h, w) patch grid of a grid-aligned image (sides multiples of ``image_factor``)."""
        f = self.image_factor
        if image.width % f or image.height % f:
            raise ValueError(f"image of {image.width}x{image.height} px is not aligned to the {f}-px grid; resize "
                             "it with mapo.data.images.fit_to_budget(image, max_pixels, factor=backend.image_factor)")
        return 1, image.height // self.patch_size, image.width // self.patch_size

    def image_tokens(self, image: Image.Image) -> int:
        """How many ``<|image_pad|>`` tokens stand for ``image`` in the sequence."""
        t, h, w = self.image_grid(image)
        return t * h * w // (self.merge_size ** 2)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Chat messages to text with the model's chat template (image items become one placeholder each)."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def encode(self, text: str, images: Sequence[Image.Image] = ()) -> list[int]:
        """Token ids of ``text`` with its k-th ``<|image_pad|>`` expanded to ``image_tokens(images[k])`` copies."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        pad = self.image_token_id
        n_pads = sum(1 for i in ids if i == pad)
        if n_pads != len(images):
            raise ValueError(f"text has {n_pads} image placeholders but {len(images)} images were given")
        out: list[int] = []
        it = iter(images)
        for i in ids:
            out.extend([pad] * self.image_tokens(next(it)) if i == pad else [i])
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @abstractmethod
    def generate(self, contexts: list[Context], max_new_tokens: int | list[int], stop: Sequence[str],
                 temperature: float = 1.0) -> list[Generation]:
        """Continue every context, batched. Each continuation ends after the first stop sequence it writes, or
        after its ``max_new_tokens`` (an int for all, or one per context). ``temperature`` 0 is greedy."""

    def sequence_logprobs(self, batch, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-response-token log-probs and entropy, both [B, L], differentiable (trainable backends only)."""
        raise NotImplementedError(f"{type(self).__name__} cannot score tokens; use a model backend (hf_qwen)")


def cut_at_stop(tokenizer, ids: Sequence[int], stop: Sequence[str], stop_ids: Sequence[int] = (),
                pieces: dict[int, str] | None = None) -> tuple[int, bool]:
    """Length of ``ids`` up to and including the first stop (a stop token id, or the token that completes a
    stop string in the decoded text); returns (length, stopped). ``pieces``: a memo of each token's decoded
    text (token id -> ``tokenizer.decode([id])``), filled as tokens are met, for a caller that cuts often."""
    stop_ids = set(stop_ids)
    text = ""
    for k, tid in enumerate(ids):
        if tid in stop_ids:
            return k + 1, True
        piece = pieces.get(tid) if pieces is not None else None
        if piece is None:
            piece = tokenizer.decode([tid], skip_special_tokens=False)
            if pieces is not None:
                pieces[tid] = piece
        text += piece
        # A stop string can only complete on a token whose text holds its last character.
        if any(s and s[-1] in piece and s in text[-(len(s) + len(piece)):] for s in stop):
            return k + 1, True
    return len(ids), False
