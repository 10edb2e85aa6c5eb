"""Input normalisation statistics for a model trained from scratch on the world's images.

The Qwen processors normalise pixels with fixed means and stds (0.5 / 0.5 for Qwen3-VL, CLIP's for Qwen2-VL)
chosen for photographs. The world's canvases are a pale background with small objects: with those constants
every patch is ~0.9 +- 0.1, the background's DC component dominates each patch embedding and a tiny vision
tower trained from scratch learnt nothing from it (measured: a quadrant-of-the-target probe stayed at chance for
300 steps, and a plain MLP on the raw patches could not even fit the colours of one batch; standardised, it fit
them perfectly). Standardising with the statistics of the views the agent will see — whole images at the
model's budget and zooms on targets — is the textbook fix; a pretrained checkpoint keeps its own constants.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image


def view_statistics(images: Iterable[Image.Image], view_side: int = 224) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) in [0, 1] units over ``images`` resized to ``view_side`` x ``view_side``."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for image in images:
        pixels = np.asarray(image.convert("RGB").resize((view_side, view_side), Image.BICUBIC), dtype=np.float64)
        pixels = pixels.reshape(-1, 3) / 255.0
        total += pixels.sum(0)
        total_sq += (pixels**2).sum(0)
        count += len(pixels)
    if count == 0:
        raise ValueError("no images to compute normalisation statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def agent_views(tasks: Iterable, zoom_fraction: float = 0.25) -> Iterable[Image.Image]:
    """The kinds of views an agent sees of each task: the whole image, and a square zoom of ``zoom_fraction``
    of the shorter side around each ground-truth target box (``task.targets``), clamped to the image."""
    for task in tasks:
        image = task.image
        yield image
        side = max(int(min(image.size) * zoom_fraction), 1)
        for box in task.targets:
            cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
            x1 = int(min(max(cx - side / 2, 0), max(image.width - side, 0)))
            y1 = int(min(max(cy - side / 2, 0), max(image.height - side, 0)))
            yield image.crop((x1, y1, x1 + side, y1 + side))
