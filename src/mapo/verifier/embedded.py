"""The embedded LiT verifier behind the common interface: saved as ``model.safetensors`` (the trainable
part only) + ``verifier_config.json``; the frozen text tower comes from its PyPI package at load time."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from mapo.verifier.base import Verifier
from mapo.verifier.config import VerifierConfig
from mapo.verifier.hf_clip import VerifierLoadError
from mapo.verifier.lit import LiTConfig, LiTModel, images_to_tensor
from mapo.verifier.text_tower import shared_text_encoder

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "verifier_config.json"


def save_lit(model: LiTModel, out_dir: str | Path, metadata: dict | None = None) -> Path:
    """Write the trainable weights and the architecture (+ optional training ``metadata``) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(out / WEIGHTS_FILE)  # atomic: a crash never leaves a half-written checkpoint
    payload = {"backend": "embedded", "lit": model.config_dict(), "training": metadata or {}}
    (out / CONFIG_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True))
    return out


def load_lit(path: str | Path, device: str | torch.device = "cpu") -> LiTModel:
    """Rebuild a ``LiTModel`` from a directory written by ``save_lit``."""
    path = Path(path).expanduser()
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise VerifierLoadError(
            f"embedded verifier: no trained verifier at {path} (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
            f"create one with `mapo verifier train --out {path}`")
    payload = json.loads((path / CONFIG_FILE).read_text())
    model = LiTModel(LiTConfig(**payload["lit"]))
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    return model.to(device).eval()


class EmbeddedVerifier(Verifier):
    """Frozen all-MiniLM-L6-v2 text tower + the trained vision tower of ``cfg.path``."""

    def __init__(self, cfg: VerifierConfig, model: LiTModel | None = None) -> None:
        super().__init__(cfg)
        if model is None:
            if cfg.path is None:
                raise VerifierLoadError("verifier backend 'embedded' needs `path`: a directory written by "
                                        "`mapo verifier train --out DIR`")
            model = load_lit(cfg.path, self.device)
        self.model = model.to(self.device, self.dtype).eval()
        self.text_encoder = shared_text_encoder(str(self.device), cfg.max_text_tokens)
        self.max_text_tokens = self.text_encoder.max_tokens

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        frozen = self.text_encoder.encode(texts).to(self.device, self.dtype)
        return self.model.text_embeddings(frozen)

    def _embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        lit = self.model.cfg
        pixels = images_to_tensor(images, lit.image_size, lit.pad_value).to(self.device, self.dtype)
        return self.model.image_embeddings(pixels)
