"""verl's reward function for multiple-choice answers (mapo.rewards underneath)."""

from __future__ import annotations

import numpy as np
import pytest

from mapo.integrations.verl.reward import compute_score


def _row(answer="B"):
    # as verl hands it over from a world/DeepEyes-style parquet row: numpy arrays for lists
    return {"options": np.array(["blue", "red", "green"], dtype=object), "answer": answer, "question": "colour?"}


@pytest.mark.parametrize("response,correct", [
    ("<think>zoom</think><answer>(B)</answer>", True),
    ("<answer>The answer is B</answer>", True),
    ("<answer>red</answer>", True),
    ("<answer>(A) blue</answer>", False),
    ("<answer>A or B</answer>", False),
    ("<think>maybe B</think> I think B", False),  # no <answer> block: a letter in the reasoning never scores
    ("", False),
])
def test_multiple_choice_accuracy(response, correct):
    out = compute_score("mapo_world", response, "B", _row())
    assert out["acc"] == float(correct) and out["score"] == float(correct)


def test_free_form_ground_truth_without_options():
    assert compute_score("deepeyes", "<answer>A Red Car.</answer>", "a red car", {})["acc"] == 1.0
    assert compute_score("deepeyes", "<answer>a blue car</answer>", "a red car", {})["acc"] == 0.0


def test_carried_zoom_records_feed_the_tool_term_and_metrics():
    extra = dict(_row(), mapo_turns=[{"turn": 0, "score": 0.6, "ok": True}, {"turn": 1, "score": 0.0, "ok": False}])
    out = compute_score("mapo_world", "<answer>B</answer>", "B", extra, preset="deepeyes")
    assert out["tool_calls"] == 2.0 and out["alignment"] == pytest.approx(0.6)
    assert out["score"] == pytest.approx(0.8 + 1.2)  # DeepEyes: 0.8 acc + 0 (format ok) + 1.2 tool bonus
    no_zoom = compute_score("mapo_world", "<answer>B</answer>", "B", _row(), preset="deepeyes")
    assert no_zoom["score"] == pytest.approx(0.8)
