"""The zoom tool: box validation and repair (properties), pixel-exact crops, source chaining, budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mapo.agent.zoom import View, ZoomConfig, ZoomError, ZoomTool, repair_box
from mapo.data.task import Box

W, H = 640, 480
WHOLE = Box(0, 0, W, H)
coord = st.floats(min_value=-2000, max_value=2000, allow_nan=False)


def image(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8))


@settings(max_examples=300, deadline=None)
@given(st.lists(coord, min_size=4, max_size=4))
def test_repaired_box_is_integer_inside_region_and_covers_the_asked_overlap(raw):
    cfg = ZoomConfig()
    try:
        box, repairs = repair_box(raw, WHOLE, cfg)
    except ZoomError:
        return
    assert all(float(v).is_integer() for v in box.as_list())
    assert 0 <= box.x1 < box.x2 <= W and 0 <= box.y1 < box.y2 <= H
    assert box.width >= cfg.min_side and box.height >= cfg.min_side
    # the part of the asked box inside the image is inside the executed box
    x1, x2 = sorted(raw[0::2])
    y1, y2 = sorted(raw[1::2])
    inside = Box(max(x1, 0), max(y1, 0), min(x2, W), min(y2, H))
    assert inside.x2 > inside.x1 and inside.y2 > inside.y1
    assert box.x1 <= inside.x1 and box.y1 <= inside.y1 and inside.x2 <= box.x2 and inside.y2 <= box.y2
    assert ("swapped" in repairs) == (raw[0] > raw[2] or raw[1] > raw[3])


@pytest.mark.parametrize("raw,fix", [
    ([100, 100, 200, 200], []),
    ([200, 200, 100, 100], ["swapped"]),
    ([-50, -10, 100, 100], ["clamped"]),
    ([600, 400, 900, 900], ["clamped"]),
    ([100, 100, 110, 300], ["expanded"]),
    ([100.4, 100.6, 199.5, 200.2], []),
])
def test_repairs_are_reported(raw, fix):
    assert repair_box(raw, WHOLE, ZoomConfig())[1] == fix


@pytest.mark.parametrize("raw,msg", [
    ([math.nan, 0, 10, 10], "NaN"), ([0, 0, math.inf, 10], "NaN"), ([5, 5, 5, 100], "zero area"),
    ([700, 500, 900, 900], "outside"), ([-100, -100, -1, -1], "outside"), ([0, 0, 639, 5], "elongated"),
])
def test_unrepairable_boxes_raise_with_a_fix(raw, msg):
    with pytest.raises(ZoomError, match=msg):
        repair_box(raw, WHOLE, ZoomConfig())


def test_small_side_expands_around_the_centre_and_stays_inside():
    box, _ = repair_box([300, 300, 310, 340], WHOLE, ZoomConfig(min_side=28))
    assert (box.x1 + box.x2) / 2 == pytest.approx(305, abs=1) and box.width == 28 and box.height == 40
    box, _ = repair_box([630, 470, 640, 480], WHOLE, ZoomConfig(min_side=28))  # at the corner: shifted in
    assert box.as_list() == [612, 452, 640, 480]


def test_crop_is_pixel_exact_against_pil_and_observation_fits_the_budget():
    img = image()
    tool = ZoomTool(ZoomConfig(crop_max_pixels=112 * 112))
    r = tool.execute([100.5, 50, 420, 300.2], img, [View(WHOLE, img)])
    assert r.ok and r.box_executed.as_list() == [100, 50, 420, 301]
    assert np.array_equal(np.asarray(r.crop), np.asarray(img.crop((100, 50, 420, 301))))
    ob = r.observation
    assert ob.width % 28 == 0 and ob.height % 28 == 0 and ob.width * ob.height <= 112 * 112


def test_relative_coordinates_and_source_chaining_map_to_the_original():
    img = image(1)
    tool = ZoomTool(ZoomConfig(coordinates="relative"))
    first = tool.execute([0.25, 0.5, 0.75, 1.0], img, [View(WHOLE, img)])
    assert first.box_executed.as_list() == [160, 240, 480, 480]
    views = [View(WHOLE, img), View(first.box_executed, first.observation)]
    second = tool.execute([0.5, 0.0, 1.0, 0.5], img, views, source=1)
    assert second.box_executed.as_list() == [320, 240, 480, 360]
    assert np.array_equal(np.asarray(second.crop), np.asarray(img.crop((320, 240, 480, 360))))
    with_pixels = ZoomTool(ZoomConfig()).execute([0, 0, 400, 300], img, views, source=1)  # clamped to view 1
    assert with_pixels.box_executed.as_list() == [160, 240, 400, 300] and "clamped" in with_pixels.repairs


@pytest.mark.parametrize("kwargs,msg", [
    ({"bbox": [0, 0, 50, 50], "source": 3}, "source 3 does not exist"),
    ({"bbox": [0, 0, 1.5, 0.5], "source": 0}, "relative"),
])
def test_failed_calls_return_error_results(kwargs, msg):
    img = image()
    r = ZoomTool(ZoomConfig(coordinates="relative")).execute(kwargs["bbox"], img, [View(WHOLE, img)],
                                                             kwargs["source"])
    assert not r.ok and msg in r.error and r.crop is None and r.observation is None
    r = ZoomTool(ZoomConfig(allow_source=False)).execute([0, 0, 50, 50], img, [View(WHOLE, img)] * 2, 1)
    assert not r.ok and "disabled" in r.error
