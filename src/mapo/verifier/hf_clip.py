"""Hugging Face ``CLIPModel`` / ``SiglipModel`` verifiers loaded from a local directory (never the hub)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import transformers
from PIL import Image

from mapo.verifier.base import Verifier
from mapo.verifier.config import VerifierConfig

#: backend name -> (transformers model class, accepted ``model_type`` values, PIL image processor class)
_FAMILIES = {
    "hf_clip": ("CLIPModel", {"clip"}, "CLIPImageProcessorPil"),
    "hf_siglip": ("SiglipModel", {"siglip"}, "SiglipImageProcessorPil"),
}


class VerifierLoadError(FileNotFoundError):
    """A verifier checkpoint is missing or of the wrong kind; the message names the path and the fix."""


def require_model_dir(path: Path | None, backend: str) -> Path:
    """Check that ``path`` is a local model directory with a ``config.json``; raise a fix-it error if not."""
    if path is None:
        raise VerifierLoadError(f"verifier backend {backend!r} needs `path`: a local directory saved with "
                                "save_pretrained (no hub downloads are made)")
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise VerifierLoadError(
            f"verifier backend {backend!r}: no model at {path} (missing {path / 'config.json'}); "
            "point `path` at a directory written by save_pretrained, or train the embedded verifier with "
            "`mapo verifier train --out DIR` and use backend 'embedded'")
    return path


def _features(output) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is the projected embedding; older
    versions return the tensor itself."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class HFClipVerifier(Verifier):
    """A CLIP or SigLIP checkpoint directory (config, weights, tokenizer, image processor config)."""

    def __init__(self, cfg: VerifierConfig) -> None:
        super().__init__(cfg)

        model_cls_name, model_types, pil_processor_name = _FAMILIES[cfg.backend]
        path = require_model_dir(cfg.path, cfg.backend)
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        if config.model_type not in model_types:
            raise VerifierLoadError(
                f"verifier backend {cfg.backend!r}: {path} holds a {config.model_type!r} model; use backend "
                f"{'hf_siglip' if config.model_type == 'siglip' else 'hf_clip'} or another directory")
        model_cls = getattr(transformers, model_cls_name)
        self.model = model_cls.from_pretrained(path, local_files_only=True, dtype=self.dtype)
        self.model.to(self.device).eval()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        # Without torchvision the "fast" processors are unavailable; pick the PIL one directly to stay quiet.
        if importlib.util.find_spec("torchvision") is None:
            self.image_processor = getattr(transformers, pil_processor_name).from_pretrained(path)
        else:
            self.image_processor = transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True)
        limit = config.text_config.max_position_embeddings
        self.max_text_tokens = min(limit, cfg.max_text_tokens) if cfg.max_text_tokens else limit
        # SigLIP was trained on texts padded to a fixed length; CLIP pools at the EOS token, so padding is free.
        self._padding = "max_length" if cfg.backend == "hf_siglip" else "longest"

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=self._padding, truncation=True, max_length=self.max_text_tokens,
                               return_tensors="pt").to(self.device)
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        if self.cfg.backend == "hf_siglip":
            inputs.pop("attention_mask", None)  # SigLIP attends to its pad tokens, as in training
        emb = _features(self.model.get_text_features(**inputs))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def _embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        emb = _features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))
        return torch.nn.functional.normalize(emb.float(), dim=-1)
