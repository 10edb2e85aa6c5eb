"""open_clip models from a local checkpoint file (optional: needs the ``openclip`` extra)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from mapo.verifier.base import Verifier
from mapo.verifier.config import VerifierConfig
from mapo.verifier.hf_clip import VerifierLoadError


class OpenClipVerifier(Verifier):
    """``open_clip.create_model_and_transforms(arch, pretrained=<local file>)``; the tokenizer must be one that
    open_clip ships (the CLIP BPE), since no hub access is made."""

    def __init__(self, cfg: VerifierConfig) -> None:
        super().__init__(cfg)
        try:
            import open_clip
        except ImportError as exc:
            raise ImportError("verifier backend 'open_clip' needs the open_clip package: "
                              "pip install 'mapo[openclip]' (or open-clip-torch)") from exc
        if not cfg.open_clip_arch:
            raise ValueError("verifier backend 'open_clip' needs `open_clip_arch` (e.g. ViT-B-32); "
                             f"known: {', '.join(open_clip.list_models()[:8])}, ...")
        if cfg.path is None or not Path(cfg.path).expanduser().is_file():
            raise VerifierLoadError(f"verifier backend 'open_clip': no checkpoint file at {cfg.path}; "
                                    "point `path` at a local .pt/.bin/.safetensors file")
        model, _, preprocess = open_clip.create_model_and_transforms(
            cfg.open_clip_arch, pretrained=str(Path(cfg.path).expanduser()), device=self.device,
            precision={"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[cfg.dtype])
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(cfg.open_clip_arch)
        self.context_length = getattr(self.tokenizer, "context_length", 77)
        limit = cfg.max_text_tokens
        self.max_text_tokens = min(self.context_length, limit) if limit else self.context_length
        # the id the tokenizer pads with: 0 for the CLIP BPE, the wrapped tokenizer's own for Hugging Face ones
        self.pad_id = getattr(getattr(self.tokenizer, "tokenizer", None), "pad_token_id", None) or 0

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        # open_clip's tokenizer truncates to max_text_tokens (keeping the end-of-text token); the text tower adds
        # a positional embedding of its whole context, so shorter rows are padded back to that length.
        tokens = self.tokenizer(texts, context_length=self.max_text_tokens)
        tokens = torch.nn.functional.pad(tokens, (0, self.context_length - tokens.shape[1]), value=self.pad_id)
        tokens = tokens.to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def _embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device, self.dtype)
        return torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)
