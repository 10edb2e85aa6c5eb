"""The one verifier interface: ``score(texts, images) -> Tensor[N]`` cosine similarities, batched and cached.

Backends only say how to embed a batch of texts and a batch of images into a shared, L2-normalised space;
batching, de-duplication, the (image hash, text) cache and the label penalties live here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from PIL import Image

from mapo.data.images import image_hash
from mapo.verifier.cache import ScoreCache
from mapo.verifier.config import VerifierConfig
from mapo.verifier.penalties import is_empty_label, penalised_score

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Verifier(ABC):
    """Scores how well each text describes the image paired with it.

    Subclasses implement ``_embed_texts`` and ``_embed_images`` (one batch each, any length up to
    ``cfg.batch_size``); both must return L2-normalised float tensors ``[n, D]`` in the same space.
    """

    def __init__(self, cfg: VerifierConfig) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.dtype = DTYPES[cfg.dtype]
        self.cache = ScoreCache(cfg.cache_size)

    # -- what a backend provides -------------------------------------------------------------------------
    @abstractmethod
    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        """[n, D] unit vectors for ``texts`` (already truncated to the encoder's limit by the backend)."""

    @abstractmethod
    def _embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        """[n, D] unit vectors for RGB ``images`` of any size (the backend resizes them)."""

    # -- batched embedding -------------------------------------------------------------------------------
    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """[N, D] float32 unit vectors on CPU, computed ``cfg.batch_size`` texts at a time."""
        return self._batched(self._embed_texts, list(texts))

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[N, D] float32 unit vectors on CPU, computed ``cfg.batch_size`` images at a time."""
        return self._batched(self._embed_images, [im.convert("RGB") for im in images])

    def _batched(self, fn, items: list) -> torch.Tensor:
        if not items:
            raise ValueError("nothing to embed: got an empty list")
        step = self.cfg.batch_size
        out = [fn(items[i:i + step]).float().cpu() for i in range(0, len(items), step)]
        return torch.cat(out)

    # -- the contract ------------------------------------------------------------------------------------
    def score(self, texts: Sequence[str], images: Sequence[Image.Image]) -> torch.Tensor:
        """Tensor[N] float32 (CPU): cosine similarity of ``texts[i]`` and ``images[i]`` in [-1, 1], after
        the label penalties of ``cfg.penalties``.

        Each distinct text and image is embedded once per call; pairs seen before (same decoded pixels, same
        text) come from the cache without touching the model.
        """
        if len(texts) != len(images):
            raise ValueError(f"score(texts, images): got {len(texts)} texts and {len(images)} images; "
                             "pass one text per image")
        raw = [0.0] * len(texts)
        keys = [(image_hash(im), t) for t, im in zip(texts, images)]
        todo: list[int] = []
        for i, key in enumerate(keys):
            if self.cfg.penalties.empty_score is not None and is_empty_label(texts[i]):
                continue  # the penalty decides; no model call for an empty label
            cached = self.cache.get(key)
            if cached is None:
                todo.append(i)
            else:
                raw[i] = cached
        if todo:
            text_index = {t: j for j, t in enumerate(dict.fromkeys(texts[i] for i in todo))}
            image_index: dict[str, int] = {}
            unique_images: list[Image.Image] = []
            for i in todo:
                if keys[i][0] not in image_index:
                    image_index[keys[i][0]] = len(unique_images)
                    unique_images.append(images[i])
            text_emb = self.embed_texts(list(text_index))
            image_emb = self.embed_images(unique_images)
            rows = torch.tensor([text_index[texts[i]] for i in todo])
            cols = torch.tensor([image_index[keys[i][0]] for i in todo])
            sims = (text_emb[rows] * image_emb[cols]).sum(-1).clamp(-1.0, 1.0).tolist()
            for i, s in zip(todo, sims):
                raw[i] = s
                self.cache.put(keys[i], s)
        scores = [penalised_score(t, r, self.cfg.penalties) for t, r in zip(texts, raw)]
        return torch.tensor(scores, dtype=torch.float32)

    def similarity_matrix(self, texts: Sequence[str], images: Sequence[Image.Image]) -> torch.Tensor:
        """Tensor[T, I] float32: raw cosine of every text with every image (no cache, no penalties);
        for retrieval metrics."""
        return self.embed_texts(texts) @ self.embed_images(images).T
