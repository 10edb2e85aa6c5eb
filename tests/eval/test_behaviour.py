"""Label drift and repetition (mapo.eval.behaviour) on hand-written texts, and in the eval summary."""

from __future__ import annotations

import pytest

from mapo.eval.behaviour import (
    answer_concentration,
    is_repetitive,
    label_drift,
    names_referent,
    repetition_rate,
)
from mapo.eval.scoring import behaviour_statistics

Q = "What pattern is on the red triangle?"
NAMES = ["the small red triangle with rising diagonal stripes"]
TOOL_TURN = ('<think>the red triangle</think><tool_call>{"bbox_2d": [256, 256, 512, 512], "label": "the red triangle"}'
             "</tool_call>")


@pytest.mark.parametrize(("label", "expected"), [
    ("the red triangle", True),
    ("a small Red Triangle with stripes", True),
    ("the cyan triangle", False),          # re-labelled to the object the zoom landed on
    ("the red square", False),
    ("stripes", False),
    ("", False),
])
def test_a_label_names_the_referent_by_the_questions_colour_and_shape(label, expected):
    assert names_referent(label, Q, NAMES) is expected


def test_tasks_whose_question_names_no_colour_or_shape_are_not_judged():
    assert names_referent("a dog", "What is the man holding?", ["the dog"]) is None
    assert label_drift([("a dog", "What is the man holding?", ["the dog"])]) is None


def test_two_target_questions_accept_either_target():
    q = "Where is the red square relative to the blue circle?"
    names = ["the small red square with digit 3", "the large blue circle with digit 5"]
    assert names_referent("the blue circle", q, names) is True
    assert names_referent("the green circle", q, names) is False


def test_label_drift_is_the_share_of_judged_labels_missing_the_referent():
    items = [("the red triangle", Q, NAMES), ("the cyan triangle", Q, NAMES), ("x", "What is it?", ["a thing"])]
    assert label_drift(items) == 0.5


@pytest.mark.parametrize(("text", "expected"), [
    ("<answer>answer answer answer answer answer</answer>", True),
    ("stripes and stripes and stripes and stripes and", True),
    ("answer answer answer", False),  # three in a row is not yet a loop
    (TOOL_TURN,
     False),
    ("<answer>horizontal stripes</answer>", False),
])
def test_repetition(text, expected):
    assert is_repetitive(text) is expected


def test_repetition_rate():
    assert repetition_rate(["a a a a", "fine text", "b b b b b", "ok"]) == 0.5
    assert repetition_rate([]) is None


def test_eval_summary_reports_both():
    records = [{"question": Q, "target_names": NAMES, "samples": [
        {"turns": [{"kind": "tool_call", "claim": "the cyan triangle", "text": "<tool_call>..</tool_call>"},
                   {"kind": "answer", "claim": None, "text": "<answer>answer answer answer answer</answer>"}]},
        {"turns": [{"kind": "tool_call", "claim": "the red triangle", "text": "<tool_call>..</tool_call>"},
                   {"kind": "answer", "claim": None, "text": "<answer>checks</answer>"}]}]}]
    assert behaviour_statistics(records) == {"label_drift": 0.5, "repetition_rate": 0.5,
                                             "answer_concentration": None}  # no sample has a prediction


def test_answer_concentration_is_the_share_of_the_most_common_answer():
    assert answer_concentration(["checks", "Checks ", "dots", None, "  "]) == 2 / 3
    assert answer_concentration(["a", "b", "c", "d"]) == 0.25
    assert answer_concentration(["horizontal stripes"] * 5) == 1.0
    assert answer_concentration([None, ""]) is None
