"""Zoom boxes against ground-truth target boxes: IoU and "did the zooms cover the target" (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

from mapo.data.task import Box

#: A target counts as covered by a zoom when at least this share of its area lies inside the zoom box.
DEFAULT_HIT_FRACTION = 0.5


def best_iou(zoom: Box, targets: Sequence[Box]) -> float:
    """The IoU of ``zoom`` with its best-matching target (0 when there are no targets)."""
    return max((zoom.iou(t) for t in targets), default=0.0)


def zoom_hits_target(zoom: Box, targets: Sequence[Box], min_fraction: float = DEFAULT_HIT_FRACTION) -> bool:
    """True when ``zoom`` covers at least ``min_fraction`` of some target's area."""
    return any(zoom.contains(t, min_fraction) for t in targets)


def zooms_cover_targets(zooms: Sequence[Box], targets: Sequence[Box],
                        min_fraction: float = DEFAULT_HIT_FRACTION) -> bool | None:
    """Did the trajectory's zooms cover **every** target (each by at least one zoom)? ``None`` when unknown:
    no targets, or no successful zoom. Questions about two objects (V* relative position) need both seen."""
    if not targets or not zooms:
        return None
    return all(any(z.contains(t, min_fraction) for z in zooms) for t in targets)
