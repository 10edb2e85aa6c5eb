"""Typed configuration of a verifier: which backend, where its weights live, how it runs, how labels are policed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Backend = Literal["embedded", "hf_clip", "hf_siglip", "open_clip"]


class LabelPenalties(BaseModel):
    """Anti-hacking rules applied to a label's score after the cosine similarity is computed."""

    model_config = ConfigDict(extra="forbid")

    empty_score: float | None = Field(
        -1.0, description="Score given to an empty or whitespace-only label (None: score it like any text).")
    max_words: int | None = Field(
        24, description="Labels longer than this many words are penalised (None: no length limit).")
    overlong_penalty_per_word: float = Field(
        0.02, description="Subtracted from the score for each word beyond max_words.")
    min_score: float = Field(-1.0, description="Scores are clipped from below to this value after penalties.")


class VerifierConfig(BaseModel):
    """How to build a ``Verifier``: backend, local path, device/dtype, batching, text limit and penalties."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = Field("embedded", description="embedded (tiny LiT) | hf_clip | hf_siglip | open_clip.")
    path: Path | None = Field(
        None, description="Local directory (HF / embedded) or checkpoint file (open_clip). No hub downloads.")
    open_clip_arch: str | None = Field(
        None, description="open_clip architecture name (e.g. ViT-B-32) when backend is open_clip.")
    device: str = Field("cpu", description="torch device the model runs on, e.g. cpu or cuda:0.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="Weights/compute dtype.")
    batch_size: int = Field(64, ge=1, description="Pairs embedded per forward pass.")
    max_text_tokens: int | None = Field(
        None, description="Truncate texts to this many tokens (None: the text encoder's own limit).")
    cache_size: int = Field(100_000, ge=0, description="Maximum (image hash, text) scores kept; 0 disables.")
    penalties: LabelPenalties = Field(default_factory=LabelPenalties, description="Label anti-hacking rules.")

    @classmethod
    def from_yaml(cls, path: str | Path) -> VerifierConfig:
        """Load a config from a YAML file (keys as the fields above)."""
        with open(path) as fh:
            return cls.model_validate(yaml.safe_load(fh) or {})
