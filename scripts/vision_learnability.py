"""Diagnostic: how fast does the tiny policy's vision tower learn to read an object from a zoomed crop?

The embedded default's SFT model never answers above chance; this isolates the vision side. Every arm trains the
same way (AdamW, batch 32, cross-entropy on the shape of the object a crop is centred on, crops of 256 px shown at
224 like the demo's zooms) and reports held-out accuracy every ``--eval-every`` steps:

- ``qwen3_vl tower, family constants``: the tiny Qwen3-VL vision tower + merger as `mapo model init` builds it,
  pixels normalised with Qwen3-VL's 0.5 / 0.5;
- ``qwen3_vl tower, world statistics``: the same tower with the world's own mean / std (mapo.models.image_stats);
- ``qwen3_vl tower, patch 8``: the same with 8-px patches (4x the image tokens);
- ``3-layer CNN``: a small convolutional reader with the world's statistics, as a yardstick.

Run: ``.venv/bin/python scripts/vision_learnability.py`` (about 10 minutes on 2 CPU cores at 1 thread).
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def world_crops(n_tasks: int, split: str, seed: int, rng: random.Random) -> list[tuple[Image.Image, int]]:
    from mapo.data.expert import zoom_box
    from mapo.data.world import WorldConfig, generate_tasks
    from mapo.data.world.render import SHAPES

    cfg = WorldConfig(seed=seed, canvas_width=1536, canvas_height=1536, clutter=24,
                      families=["attribute"], attribute_asks=["glyph"], unique_target_colour=True,
                      target_size_min=60, target_size_max=76, glyph_contrast=1.0)
    out = []
    for task in generate_tasks(cfg, split, n=n_tasks):
        for obj in task.extra["objects"][:8]:
            box = zoom_box(obj, rng, (0.75, 2.0), 0.5, task.image.width, task.image.height, 256, 32)
            crop = task.image.crop(tuple(int(v) for v in box)).resize((224, 224), Image.BICUBIC)
            out.append((crop, SHAPES.index(obj["shape"])))
    return out


class TowerReader(nn.Module):
    """A fresh tiny Qwen3-VL vision tower (as the zoo builds it) + mean/max pooling + a linear head."""

    def __init__(self, patch: int, mean: list[float], std: list[float], n_classes: int, seed: int):
        super().__init__()
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

        from mapo.models.zoo import image_processor_for, tiny_config, train_tokenizer

        tok = train_tokenizer(["What shape is it? (A) circle"] * 4, vocab_size=300)
        vc = tiny_config(tok, "qwen3_vl", vision_patch=patch).vision_config
        torch.manual_seed(seed)
        self.tower = Qwen3VLVisionModel._from_config(vc)
        self.processor = image_processor_for("qwen3_vl", image_mean=mean, image_std=std, vision_patch=patch)
        self.processor.size = {"shortest_edge": 224 * 224, "longest_edge": 224 * 224}
        self.dim = vc.out_hidden_size
        self.head = nn.Linear(2 * self.dim, n_classes)

    def forward(self, images: list[Image.Image]) -> torch.Tensor:
        px = self.processor(images=images, return_tensors="pt")
        feats = self.tower(px["pixel_values"], grid_thw=px["image_grid_thw"]).pooler_output
        feats = feats.view(len(images), -1, self.dim)
        return self.head(torch.cat([feats.mean(1), feats.max(1).values], -1))


class CNNReader(nn.Module):
    def __init__(self, mean: list[float], std: list[float], n_classes: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
        self.net = nn.Sequential(nn.Conv2d(3, 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(256, n_classes)

    def forward(self, images: list[Image.Image]) -> torch.Tensor:
        x = torch.tensor(np.stack([np.asarray(i) for i in images]), dtype=torch.float32).permute(0, 3, 1, 2) / 255
        f = self.net((x - self.mean) / self.std).flatten(2)
        return self.head(torch.cat([f.mean(-1), f.max(-1).values], -1))


def train_arm(model: nn.Module, train, val, steps: int, eval_every: int, lr: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    accs = []
    for step in range(steps + 1):
        if step % eval_every == 0:
            with torch.no_grad():
                right = sum(int((model([i for i, _ in val[k:k + 64]]).argmax(-1) ==
                                 torch.tensor([y for _, y in val[k:k + 64]])).sum()) for k in range(0, len(val), 64))
            accs.append(right / len(val))
        if step == steps:
            break
        batch = rng.sample(train, 32)
        loss = F.cross_entropy(model([i for i, _ in batch]), torch.tensor([y for _, y in batch]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return accs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-patch8", action="store_true", help="skip the (slow) 8-px patch arm")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from mapo.data.world.render import SHAPES
    from mapo.models.image_stats import view_statistics

    rng = random.Random(args.seed)
    train, val = world_crops(300, "train", args.seed, rng), world_crops(40, "val", args.seed, rng)
    mean, std = view_statistics(i for i, _ in train[:400])
    n = len(SHAPES)
    arms = {
        "qwen3_vl tower, family constants": lambda: TowerReader(16, [0.5] * 3, [0.5] * 3, n, args.seed),
        "qwen3_vl tower, world statistics": lambda: TowerReader(16, mean, std, n, args.seed),
        "qwen3_vl tower, patch 8, world statistics": lambda: TowerReader(8, mean, std, n, args.seed),
        "3-layer CNN, world statistics": lambda: CNNReader(mean, std, n, args.seed),
    }
    if args.no_patch8:
        arms.pop("qwen3_vl tower, patch 8, world statistics")
    print(f"{len(train)} train / {len(val)} val crops; world statistics mean {mean} std {std}; "
          f"chance {1 / n:.3f}")
    header = " | ".join(f"step {s}" for s in range(0, args.steps + 1, args.eval_every))
    print(f"| arm | {header} | seconds |")
    print("|---" * (2 + len(range(0, args.steps + 1, args.eval_every))) + "|")
    for name, build in arms.items():
        t0 = time.time()
        accs = train_arm(build(), train, val, args.steps, args.eval_every, args.lr, args.seed)
        print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in accs) + f" | {time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
