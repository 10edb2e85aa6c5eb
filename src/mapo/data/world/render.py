"""The one renderer of the world: draws coloured shapes carrying a digit (or a fine pattern) on a canvas.

The world's images and the verifier's training crops both come from here, so "what a red triangle marked 7
looks like" is defined once. An object is a dict ``{"box": [x1, y1, x2, y2] (pixels), "shape", "colour",
"glyph", "size"}``, optionally with ``"pattern"`` (one of ``PATTERNS``): its fill is then striped or checked
with a lighter tint at a period of a few pixels, and it carries no digit. Every pattern lightens the same
share of the fill, so a shrunken view shows one flat tint whatever the pattern; the full-resolution object shows
it plainly. Drawing is deterministic (PIL primitives and PIL's bundled font only).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

#: Named colours (RGB). Names are what questions, options and captions use.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 150, 60),
    "blue": (40, 80, 215),
    "yellow": (225, 195, 30),
    "purple": (135, 60, 175),
    "orange": (240, 125, 20),
    "cyan": (30, 185, 195),
    "pink": (235, 115, 175),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "pentagon", "hexagon")

GLYPHS: tuple[str, ...] = tuple("0123456789")

#: Fine fill patterns (names are what questions, options and captions use). Each lightens half the fill.
PATTERNS: tuple[str, ...] = ("horizontal stripes", "vertical stripes", "rising diagonal stripes",
                             "falling diagonal stripes", "checks")

#: Pale background colours; one is picked per image.
BACKGROUNDS: tuple[tuple[int, int, int], ...] = (
    (244, 242, 236),
    (236, 240, 244),
    (240, 244, 236),
    (246, 240, 240),
)


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _regular_polygon(cx: float, cy: float, r: float, n: int, rotation: float) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(rotation + 2 * math.pi * k / n), cy + r * math.sin(rotation + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _outline(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(c * 0.55) for c in rgb)  # type: ignore[return-value]


def _text_colour(rgb: tuple[int, int, int], contrast: float) -> tuple[int, int, int]:
    """Dark digits on light fills, light on dark; ``contrast`` in (0, 1] blends them toward the fill, so that
    shrinking the image washes the digit out while the original pixels stay legible."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    ink = (20, 20, 20) if luminance > 150 else (250, 250, 250)
    return tuple(round(c + contrast * (i - c)) for c, i in zip(rgb, ink))  # type: ignore[return-value]


@dataclass(frozen=True)
class Nuisance:
    """Per-object variation that carries no meaning: it keeps a shrunken digit's few pixels (ink mass, ink
    position) from telling digits apart, while the full-resolution digit stays plain to read."""

    fill_jitter: int = 0  # +- this many levels on each RGB channel of the fill
    glyph_shift: float = 0.0  # +- this fraction of the object size, on each axis, for the digit's position
    glyph_scale: float = 0.0  # +- this fraction of the digit's font size


def _nuisance_rng(obj: dict) -> random.Random:
    # Derived from the object itself, so the same object dict always draws the same pixels.
    return random.Random(f"{list(obj['box'])}:{obj['colour']}:{obj['shape']}:{obj['glyph']}")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: list[float], **style) -> float:
    """Draw ``shape`` inside ``box`` with PIL ``style`` (fill, outline, width); returns the digit's centre y."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = (x2 - x1) / 2
    if shape == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], **style)
    elif shape == "square":
        inset = r * 0.1
        draw.rectangle([x1 + inset, y1 + inset, x2 - 1 - inset, y2 - 1 - inset], **style)
    elif shape == "triangle":
        draw.polygon([(cx, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], **style)
        return cy + r * 0.25  # the triangle's body sits low: centre the digit where there is room
    elif shape == "diamond":
        draw.polygon([(cx, y1), (x2 - 1, cy), (cx, y2 - 1), (x1, cy)], **style)
    elif shape == "pentagon":
        draw.polygon(_regular_polygon(cx, cy + r * 0.05, r, 5, -math.pi / 2), **style)
    elif shape == "hexagon":
        draw.polygon(_regular_polygon(cx, cy, r, 6, 0.0), **style)
    else:
        raise ValueError(f"unknown shape {shape!r}; known shapes: {', '.join(SHAPES)}")
    return cy


def pattern_mask(pattern: str, width: int, height: int, period: int, phase: tuple[int, int] = (0, 0)) -> Image.Image:
    """An ``L`` image (255 = lighten) of ``pattern`` with ``period`` pixels, shifted by ``phase``: half of it on."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; known patterns: {', '.join(PATTERNS)}")
    if period < 2:
        raise ValueError(f"pattern period {period} px is below 2; a pattern needs at least 2 pixels per cycle")
    half = period / 2
    v, u = np.mgrid[0:height, 0:width]
    u, v = u + phase[0], v + phase[1]
    on = {"horizontal stripes": v % period < half, "vertical stripes": u % period < half,
          "rising diagonal stripes": (u + v) % period < half, "falling diagonal stripes": (u - v) % period < half,
          "checks": (u // half + v // half) % 2 == 0}[pattern]
    return Image.fromarray(on.astype(np.uint8) * 255, mode="L")


def draw_object(
    draw: ImageDraw.ImageDraw, obj: dict, glyph_contrast: float = 1.0, nuisance: Nuisance = Nuisance(),
    pattern_period: int = 4, pattern_tint: float = 0.6,
) -> None:
    """Draw one object (shape filled with its colour, its glyph centred, or its pattern over the fill) inside
    ``obj["box"]`` (pixels). ``pattern_period``: pixels per cycle of a pattern; ``pattern_tint``: how far its
    light half is blended toward white."""
    x1, y1, x2, y2 = obj["box"]
    rng = _nuisance_rng(obj)
    j = nuisance.fill_jitter
    rgb = tuple(min(255, max(0, c + rng.randint(-j, j))) for c in COLOURS[obj["colour"]])
    cx = (x1 + x2) / 2
    style = {"fill": rgb, "outline": _outline(rgb), "width": 2}
    glyph_cy = _draw_shape(draw, obj["shape"], [x1, y1, x2, y2], **style)
    if obj.get("pattern"):
        w, h = math.ceil(x2 - x1), math.ceil(y2 - y1)
        inside = Image.new("L", (w, h), 0)  # the fill without its outline
        _draw_shape(ImageDraw.Draw(inside), obj["shape"], [0, 0, x2 - x1, y2 - y1], fill=255, outline=0, width=2)
        phase = (rng.randrange(pattern_period), rng.randrange(pattern_period))
        on = pattern_mask(obj["pattern"], w, h, pattern_period, phase)
        light = tuple(round(c + pattern_tint * (255 - c)) for c in rgb)
        draw.bitmap((x1, y1), ImageChops.multiply(inside, on), fill=light)
        return
    scale = 1 + rng.uniform(-nuisance.glyph_scale, nuisance.glyph_scale)
    font = _font(max(6, round((x2 - x1) * scale * (0.42 if obj["shape"] in ("triangle", "diamond") else 0.55))))
    shift = nuisance.glyph_shift * (x2 - x1)
    at = (cx + rng.uniform(-shift, shift), glyph_cy + rng.uniform(-shift, shift))
    draw.text(at, obj["glyph"], fill=_text_colour(rgb, glyph_contrast), font=font, anchor="mm")


def render_scene(
    width: int,
    height: int,
    objects: list[dict],
    background: tuple[int, int, int],
    lines: list[tuple[float, float, float, float]] = (),
    glyph_contrast: float = 1.0,
    nuisance: Nuisance = Nuisance(),
    pattern_period: int = 4,
    pattern_tint: float = 0.6,
) -> Image.Image:
    """The canvas (RGB, ``width`` x ``height`` pixels): background, faint texture lines, then every object."""
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    line_rgb = tuple(max(0, c - 28) for c in background)
    for x1, y1, x2, y2 in lines:
        draw.line([(x1, y1), (x2, y2)], fill=line_rgb, width=2)
    for obj in objects:
        draw_object(draw, obj, glyph_contrast, nuisance, pattern_period, pattern_tint)
    return image
