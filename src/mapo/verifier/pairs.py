"""(caption, crop) training and evaluation pairs cut from the embedded world's own images.

Nothing is drawn here: crops come from ``mapo.data.world`` canvases (one renderer) and captions from its
``describe``. Per object we make
- a **hit** crop: the object fully inside, with a random margin and off-centre jitter, as a zoom would cut it;
- a **miss** crop of the same size that does not contain the object (clutter or bare background);
- a caption naming some of its attributes (``ATTRIBUTE_SUBSETS``: labels written before zooming name only
  what the question says) in one of the allowed templates;
- a **hard negative** caption: the same wording with exactly one named attribute changed (same shape other
  colour, right object other digit, ...).
Attributes are encoded as integer codes so the loss can tell which captions match which crops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from mapo.data.world.captions import describe
from mapo.data.world.render import COLOURS, GLYPHS, SHAPES
from mapo.verifier.lit import letterbox

#: The attributes a caption may pin down, in code order.
KEYS = ("colour", "shape", "glyph")
VALUES = {"colour": tuple(COLOURS), "shape": SHAPES, "glyph": GLYPHS}

#: Which attributes a caption names, with sampling weights: full descriptions most often, and every partial
#: description the expert or a policy writes before it has seen the digit or the colour.
ATTRIBUTE_SUBSETS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("colour", "shape", "glyph"), 0.4),
    (("colour", "shape"), 0.2),
    (("shape", "glyph"), 0.15),
    (("colour", "glyph"), 0.15),
    (("shape",), 0.05),
    (("colour",), 0.05),
)


@dataclass
class PairConfig:
    """How crops are cut around objects."""

    margin_min: float = 1.2
    """Smallest crop side as a multiple of the object side (a tight zoom)."""
    margin_max: float = 5.0
    """Largest crop side as a multiple of the object side (the expert's zooms are 2.5-5x the object side)."""
    subsets: tuple[tuple[tuple[str, ...], float], ...] = field(default=ATTRIBUTE_SUBSETS)
    """Attribute subsets a caption names, with weights."""


@dataclass
class PairSet:
    """N pairs. ``hit``/``miss`` are crops (PIL, original resolution); codes are ``[N, 3]`` longs over KEYS."""

    hit: list[Image.Image]
    miss: list[Image.Image]
    captions: list[str]
    negatives: list[str]
    object_codes: torch.Tensor  # [N, 3] the object's colour, shape, glyph codes
    caption_codes: torch.Tensor  # [N, 3] what the caption says (equal to object_codes where named)
    caption_named: torch.Tensor  # [N, 3] bool: which attributes the caption names
    negative_codes: torch.Tensor  # [N, 3] what the hard negative says (one named attribute changed)
    templates: list[int]

    def __len__(self) -> int:
        return len(self.captions)


def codes_of(obj: dict) -> list[int]:
    return [VALUES[k].index(str(obj[k])) for k in KEYS]


def caption_matches(caption_codes: torch.Tensor, caption_named: torch.Tensor,
                    object_codes: torch.Tensor) -> torch.Tensor:
    """[T, O] bool: caption t is true of object o (every attribute it names agrees).

    caption_codes [T, 3] long, caption_named [T, 3] bool, object_codes [O, 3] long."""
    agree = caption_codes[:, None, :] == object_codes[None, :, :]
    return (agree | ~caption_named[:, None, :]).all(-1)


def hit_box(obj_box: list[int], canvas: tuple[int, int], rng: random.Random, cfg: PairConfig) -> tuple[int, ...]:
    """A square crop (pixels) that fully contains ``obj_box``, side = margin x object side, jittered."""
    x1, y1, x2, y2 = obj_box
    w, h = canvas
    side = round(max(x2 - x1, y2 - y1) * rng.uniform(cfg.margin_min, cfg.margin_max))
    side = min(side, w, h)
    left = rng.randint(max(0, x2 - side), max(0, min(x1, w - side)))
    top = rng.randint(max(0, y2 - side), max(0, min(y1, h - side)))
    return left, top, left + side, top + side


def _overlap(a, b) -> float:
    """Fraction of box ``b``'s area inside box ``a`` (pixels)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    area = (b[2] - b[0]) * (b[3] - b[1])
    return max(0, iw) * max(0, ih) / area if area > 0 else 0.0


def miss_box(objects: list[dict], target: dict, side: int, canvas: tuple[int, int], named: tuple[str, ...],
             rng: random.Random, tries: int = 50) -> tuple[int, ...]:
    """A crop of ``side`` px that shows no object matching what the caption names about ``target`` (at most
    a sliver of one): half the time around another object (clutter), else anywhere on the canvas."""
    w, h = canvas
    side = min(side, w, h)
    lookalikes = [o["box"] for o in objects if all(o[k] == target[k] for k in named)]
    others = [o for o in objects if o is not target]
    box = (0, 0, side, side)
    for _ in range(tries):
        if others and rng.random() < 0.5:
            ox1, oy1, ox2, oy2 = rng.choice(others)["box"]
            cx, cy = (ox1 + ox2) / 2 + rng.uniform(-side / 4, side / 4), (oy1 + oy2) / 2 + rng.uniform(-side / 4,
                                                                                                    side / 4)
            left, top = int(cx - side / 2), int(cy - side / 2)
        else:
            left, top = rng.randint(0, w - side), rng.randint(0, h - side)
        left, top = min(max(0, left), w - side), min(max(0, top), h - side)
        box = (left, top, left + side, top + side)
        if all(_overlap(box, b) < 0.15 for b in lookalikes):
            return box
    return box


def _sample_subset(rng: random.Random, cfg: PairConfig) -> tuple[str, ...]:
    subsets, weights = zip(*cfg.subsets)
    return rng.choices(subsets, weights=weights)[0]


def _hard_negative(obj: dict, named: tuple[str, ...], rng: random.Random) -> dict:
    """``obj`` with one of the ``named`` attributes changed to another value."""
    key = rng.choice([k for k in named if k in KEYS])
    return {**obj, key: rng.choice([v for v in VALUES[key] if v != str(obj[key])])}


def make_pairs(tasks, templates: tuple[int, ...] | list[int], rng: random.Random, cfg: PairConfig | None = None,
               per_task: int | None = None, subset: tuple[str, ...] | None = None) -> PairSet:
    """Pairs from every object (or ``per_task`` random objects) of each world ``Task``.

    ``templates``: caption template indices of ``mapo.data.world.captions`` to draw from. ``subset``: force the
    named attributes (default: sample from ``cfg.subsets``)."""
    cfg = cfg or PairConfig()
    out = {k: [] for k in ("hit", "miss", "captions", "negatives", "obj", "cap", "named", "neg", "templates")}
    for task in tasks:
        objects = task.extra["objects"]
        canvas = task.image.size
        chosen = objects if per_task is None else rng.sample(objects, min(per_task, len(objects)))
        for obj in chosen:
            named = subset or _sample_subset(rng, cfg)
            template = rng.choice(list(templates))
            attrs = tuple(named) + ("size",)
            box = hit_box(obj["box"], canvas, rng, cfg)
            negative = _hard_negative(obj, named, rng)
            out["hit"].append(task.image.crop(box))
            out["miss"].append(task.image.crop(miss_box(objects, obj, box[2] - box[0], canvas, named, rng)))
            out["captions"].append(describe(obj, template, attrs))
            out["negatives"].append(describe(negative, template, attrs))
            out["obj"].append(codes_of(obj))
            out["cap"].append(codes_of(obj))
            out["neg"].append(codes_of(negative))
            out["named"].append([k in named for k in KEYS])
            out["templates"].append(template)
    return PairSet(
        hit=out["hit"], miss=out["miss"], captions=out["captions"], negatives=out["negatives"],
        object_codes=torch.tensor(out["obj"], dtype=torch.long).reshape(-1, 3),
        caption_codes=torch.tensor(out["cap"], dtype=torch.long).reshape(-1, 3),
        caption_named=torch.tensor(out["named"], dtype=torch.bool).reshape(-1, 3),
        negative_codes=torch.tensor(out["neg"], dtype=torch.long).reshape(-1, 3),
        templates=out["templates"],
    )


def crops_to_uint8(crops: list[Image.Image], size: int, pad_value: int = 127) -> torch.Tensor:
    """[N, 3, size, size] uint8 letter-boxed crops (compact storage for training; 12 kB each at 64 px)."""
    return torch.from_numpy(np.stack([np.asarray(letterbox(c, size, pad_value)) for c in crops])).permute(0, 3, 1, 2)
