"""Scores from hand-written records, checked against hand-computed numbers."""

import pytest

from mapo.data.boxes import zooms_cover_targets
from mapo.data.task import Box
from mapo.eval.scoring import box_statistics, hrbench_accuracy, item_score, summarize, tool_statistics


def rec(id, correct, category="c", cycle=None, **kw):
    samples = [{"correct": c, "turns": [], "n_tool_calls": 0} for c in (correct if isinstance(correct, list)
                                                                          else [correct])]
    groups = {"cycle_category": cycle} if cycle else {}
    return {"id": id, "category": category, "groups": groups, "samples": samples, "error": None, **kw}


def test_avg_at_k_and_pass_at_k_count_failed_items_as_wrong():
    records = [rec("a", [True, False, False, True]), rec("b", [False] * 4),
               {"id": "c", "category": "c", "error": "corrupt image", "samples": []}]
    s = summarize(records)
    assert s["accuracy"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert s["pass_at_k"] == pytest.approx(1 / 3)
    assert s["k"] == 4 and s["n_errors"] == 1 and s["errors"][0]["id"] == "c"


def test_per_category_and_group():
    records = [rec("1", True, "direct_attributes"), rec("2", False, "direct_attributes"),
               rec("3", True, "relative_position"),
               rec("4", True, "Perception/x", l2=None), ]
    records[3]["groups"] = {"l2_category": "Monitoring"}
    s = summarize(records)
    assert s["per_category"] == {"Perception/x": 1.0, "direct_attributes": 0.5, "relative_position": 1.0}
    assert s["per_group"] == {"l2_category": {"Monitoring": 1.0}}
    assert s["accuracy"] == pytest.approx(3 / 4)


def test_hrbench_cycle_averaging_by_hand():
    # cycle1: FSP 1,0  FCP 1      -> all 2/3, FSP 1/2, FCP 1
    # cycle2: FSP 1    FCP 0,0,0  -> all 1/4, FSP 1,   FCP 0
    records = [rec("1", True, "FSP", "cycle1"), rec("2", False, "FSP", "cycle1"), rec("3", True, "FCP", "cycle1"),
               rec("4", True, "FSP", "cycle2"), rec("5", False, "FCP", "cycle2"), rec("6", False, "FCP", "cycle2"),
               rec("7", False, "FCP", "cycle2")]
    hr = hrbench_accuracy(records)
    assert hr["cycles"]["cycle1"] == pytest.approx({"all": 2 / 3, "FSP": 0.5, "FCP": 1.0})
    assert hr["cycles"]["cycle2"] == pytest.approx({"all": 1 / 4, "FSP": 1.0, "FCP": 0.0})
    assert hr["average"] == pytest.approx({"all": (2 / 3 + 1 / 4) / 2, "FSP": 0.75, "FCP": 0.5})
    s = summarize(records)
    # the headline is the cycle average (11/24), not the row mean (3/7)
    assert s["accuracy"] == pytest.approx(11 / 24) and s["accuracy"] != pytest.approx(3 / 7)


def test_zooms_must_cover_every_target():
    cup, plate = Box(0, 0, 10, 10), Box(50, 50, 60, 60)
    assert zooms_cover_targets([Box(0, 0, 20, 20)], [cup]) is True
    assert zooms_cover_targets([Box(0, 0, 20, 20)], [cup, plate]) is False
    assert zooms_cover_targets([Box(0, 0, 20, 20), Box(45, 45, 70, 70)], [cup, plate]) is True
    assert zooms_cover_targets([Box(6, 0, 20, 20)], [cup]) is False  # only 40% of the cup inside
    assert zooms_cover_targets([], [cup]) is None and zooms_cover_targets([cup], []) is None


def test_box_statistics_and_gap():
    def sample(correct, hit, ious):
        return {"correct": correct, "zoom_hit": hit, "turns": [{"iou": i} for i in ious], "n_tool_calls": len(ious)}

    record = {"id": "x", "targets": [[0, 0, 1, 1]], "error": None, "samples": [
        sample(True, True, [0.5]), sample(True, False, [0.1, 0.0]), sample(False, False, [0.2]),
        sample(True, None, [])]}
    b = box_statistics([record])
    assert b["mean_iou"] == pytest.approx((0.5 + 0.1 + 0.0 + 0.2) / 4)
    assert b["hit_rate"] == pytest.approx(1 / 3)
    assert b["gap"] == pytest.approx(1 / 2)  # of the 2 correct samples that zoomed, one missed


def test_tool_statistics():
    samples = [{"n_tool_calls": 2, "turns": [{"kind": "tool_call", "error": None}, {"kind": "tool_call",
               "error": "box too small"}, {"kind": "answer"}], "hit_turn_cap": False, "prediction": "A",
                "format_ok": True},
               {"n_tool_calls": 0, "turns": [{"kind": "error"}], "hit_turn_cap": True, "prediction": None,
                "format_ok": False}]
    t = tool_statistics([{"id": "x", "samples": samples}])
    assert t == pytest.approx({"tool_call_rate": 0.5, "calls_per_sample": 1.0, "valid_call_rate": 0.5,
                               "turns_per_sample": 2.0, "turn_cap_rate": 0.5, "answered_rate": 0.5,
                               "format_error_rate": 0.5})


def test_item_score_of_failed_item_is_zero():
    assert item_score({"error": "x", "samples": [{"correct": True}]}) == 0.0
