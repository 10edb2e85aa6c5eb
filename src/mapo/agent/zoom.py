"""The zoom tool: validate and repair a box, crop the original image, resize the crop to a pixel budget.

Coordinates (``ZoomConfig.coordinates``):
- ``pixel`` (default): ``bbox_2d`` is in pixels of the **original** image, whatever the source; ``source = k``
  restricts the crop to the region observation k shows (the box is clamped into it).
- ``relative``: ``bbox_2d`` is in [0, 1] of the source image (Mini-o3 style): of the whole original for
  ``source = 0``, of observation k's region otherwise.
Either way the crop is cut from the original image (no quality lost to earlier resizes), so a chain of
zooms is pixel-exact against one PIL crop of the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PIL import Image

from mapo.data.images import ImageError, fit_to_budget
from mapo.data.task import Box


@dataclass(frozen=True)
class ZoomConfig:
    """Rules of the zoom tool."""

    coordinates: str = "pixel"
    """``pixel`` (original-image pixels) or ``relative`` ([0, 1] of the source image)."""
    min_side: int = 28
    """A side shorter than this (pixels of the original) is expanded around the box centre."""
    max_aspect: float = 100.0
    """Boxes more elongated than this are rejected (the model cannot see them as an image)."""
    crop_max_pixels: int = 224 * 224
    """Pixel budget of the crop as shown to the model."""
    crop_min_pixels: int = 4 * 28 * 28
    """Smallest area the crop is shown at: a smaller crop is magnified up to it (what "zoom in" means)."""
    image_factor: int = 28
    """Grid the shown crop is aligned to (patch size x merge size of the model: 28 Qwen2/2.5-VL, 32 Qwen3-VL)."""
    allow_source: bool = True
    """Allow cropping from an earlier observation (``source`` > 0)."""
    repair: str = "tell"
    """Box repair policy. ``tell`` (default): swap inverted corners and clamp a box into the image, run it, and
    say what was changed in the observation (``ToolResult.note``), so the model learns from it. ``refuse``: a box
    that needs a swap or a clamp is an error observation instead. Either way a side under ``min_side`` is
    widened (and told): that is the tool's minimum crop, not a mistake of the model."""


@dataclass
class View:
    """An image the model has seen: the region of the original it shows (pixels) and its shown size."""

    region: Box
    shown: Image.Image


@dataclass
class ToolResult:
    """What one zoom call did. On failure ``error`` is set and ``crop`` / ``observation`` are None."""

    box_asked: list[float] | None
    box_executed: Box | None = None
    source: int = 0
    crop: Image.Image | None = None
    """The crop at original resolution: ``original.crop(box_executed)``."""
    observation: Image.Image | None = None
    """The crop resized to the budget: the image the model is shown."""
    error: str | None = None
    repairs: list[str] = field(default_factory=list)
    """What was fixed about the box (``clamped``, ``swapped``, ``expanded``), for statistics."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def note(self) -> str:
        """What the tool changed about the asked box, for the observation ("" when nothing was changed)."""
        if not self.ok or not self.repairs or self.box_executed is None:
            return ""
        asked = ", ".join(f"{v:g}" if isinstance(v, (int, float)) else "?" for v in self.box_asked or [])
        done = ", ".join(f"{v:g}" for v in self.box_executed.as_list())
        why = "; ".join(_REPAIR_TEXT.get(r, r) for r in self.repairs)
        return f"Note: bbox_2d [{asked}] was changed to [{done}] (pixels of the original image): {why}."


_REPAIR_TEXT = {
    "swapped": "corners swapped so that x1 < x2 and y1 < y2",
    "clamped": "clamped to the image (or to the source view)",
    "expanded": "widened to the smallest crop the tool shows",
}


class ZoomError(ValueError):
    """A box that cannot be repaired; the message is shown to the model."""


def repair_box(raw: list[float], region: Box, cfg: ZoomConfig) -> tuple[Box, list[str]]:
    """Turn the asked box into an integer pixel box inside ``region`` (pixels of the original image).

    Raises ``ZoomError`` for non-finite numbers, relative values outside [0, 1], zero area, boxes that do not
    overlap the region, and aspect ratios above ``cfg.max_aspect``. Repairs (reported): swapped corners,
    clamping into the region, expanding a side under ``cfg.min_side`` around the centre. With
    ``cfg.repair == "refuse"`` a box that needs a swap or a clamp raises ``ZoomError`` instead."""
    if len(raw) != 4:
        raise ZoomError("bbox_2d must have 4 numbers [x1, y1, x2, y2]")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in raw):
        raise ZoomError("bbox_2d has a NaN or infinite number; give 4 finite coordinates")
    x1, y1, x2, y2 = (float(v) for v in raw)
    repairs: list[str] = []
    if cfg.coordinates == "relative":
        if min(raw) < -1e-6 or max(raw) > 1 + 1e-6:
            raise ZoomError("relative bbox_2d values must lie in [0, 1] (fractions of the source image)")
        x1, x2 = (region.x1 + v * region.width for v in (x1, x2))
        y1, y2 = (region.y1 + v * region.height for v in (y1, y2))
    if (x1 > x2 or y1 > y2) and cfg.repair == "refuse":
        raise ZoomError("bbox_2d has x1 > x2 or y1 > y2; give the top-left corner first: [x1, y1, x2, y2]")
    if x1 > x2 or y1 > y2:
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        repairs.append("swapped")
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise ZoomError("bbox_2d has zero area; give x2 > x1 and y2 > y1")
    cx1, cy1 = max(x1, region.x1), max(y1, region.y1)
    cx2, cy2 = min(x2, region.x2), min(y2, region.y2)
    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
        raise ZoomError(f"bbox_2d lies outside the image ({region.x1:.0f}, {region.y1:.0f}, {region.x2:.0f}, "
                        f"{region.y2:.0f}); give coordinates inside it")
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        if cfg.repair == "refuse":
            raise ZoomError(f"bbox_2d reaches outside the image ({region.x1:.0f}, {region.y1:.0f}, "
                            f"{region.x2:.0f}, {region.y2:.0f}); give coordinates inside it")
        repairs.append("clamped")
    w, h = cx2 - cx1, cy2 - cy1
    if max(w, h) / min(w, h) > cfg.max_aspect:
        raise ZoomError(f"bbox_2d is {w:.0f}x{h:.0f} px, more elongated than {cfg.max_aspect:.0f}:1; "
                        "zoom on a less elongated region")
    # Integer pixels: grow outward so the asked region stays inside the crop.
    bx1, by1 = math.floor(cx1), math.floor(cy1)
    bx2, by2 = math.ceil(cx2), math.ceil(cy2)
    bx1, bx2, grew_x = _ensure_side(bx1, bx2, cfg.min_side, int(region.x1), int(region.x2))
    by1, by2, grew_y = _ensure_side(by1, by2, cfg.min_side, int(region.y1), int(region.y2))
    if grew_x or grew_y:
        repairs.append("expanded")
    return Box(bx1, by1, bx2, by2), repairs


def _ensure_side(a: int, b: int, min_side: int, lo: int, hi: int) -> tuple[int, int, bool]:
    """Expand [a, b) to at least ``min_side`` around its centre, shifted to stay in [lo, hi)."""
    side = min(min_side, hi - lo)
    if b - a >= side:
        return a, b, False
    centre = (a + b) / 2
    a = math.floor(centre - side / 2)
    a = min(max(a, lo), hi - side)
    return a, a + side, True


class ZoomTool:
    """Executes ``image_zoom_in_tool`` calls against one original image and the views seen so far."""

    def __init__(self, cfg: ZoomConfig | None = None):
        self.cfg = cfg or ZoomConfig()
        if self.cfg.repair not in ("tell", "refuse"):
            raise ValueError(f"ZoomConfig.repair={self.cfg.repair!r}: choose 'tell' or 'refuse'")

    def execute(self, bbox: list[float], original: Image.Image, views: list[View], source: int = 0) -> ToolResult:
        """Crop ``original`` at ``bbox`` (see the module doc for the coordinates) from view ``source``.

        ``views[0]`` is the task image as shown (region = the whole original); ``views[k]`` the k-th
        observation. Never raises on bad input: a failed call returns ``ToolResult(error=...)``."""
        result = ToolResult(box_asked=list(bbox) if isinstance(bbox, (list, tuple)) else None, source=source)
        try:
            if source != 0 and not self.cfg.allow_source:
                raise ZoomError("cropping from an earlier observation is disabled; use source 0")
            if not 0 <= source < len(views):
                raise ZoomError(f"source {source} does not exist; use 0 (the original) to {len(views) - 1}")
            box, result.repairs = repair_box(list(bbox), views[source].region, self.cfg)
            crop = original.crop((int(box.x1), int(box.y1), int(box.x2), int(box.y2)))
            result.observation = fit_to_budget(crop, self.cfg.crop_max_pixels, factor=self.cfg.image_factor,
                                               min_pixels=min(self.cfg.crop_min_pixels, self.cfg.crop_max_pixels))
            result.box_executed, result.crop = box, crop
        except (ZoomError, ImageError) as exc:
            result.error = str(exc)
        except (TypeError, ValueError, OverflowError) as exc:
            result.error = f"bbox_2d could not be used ({exc}); give 4 numbers [x1, y1, x2, y2]"
        return result
