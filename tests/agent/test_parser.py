"""The turn parser: the protocol's golden cases, the faults real models make, and structured errors."""

from __future__ import annotations

import json

import pytest

from mapo.agent.parser import parse_turn

CALL = {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 110, 220], "label": "a red circle"}}


def test_well_formed_call_gives_think_box_and_label():
    t = parse_turn(f"<think>the sign is tiny</think>\n<tool_call>{json.dumps(CALL)}</tool_call>")
    assert t.kind == "tool_call" and t.error is None
    assert t.think == "the sign is tiny"
    assert t.tool_call.bbox == [10.0, 20.0, 110.0, 220.0] and t.tool_call.label == "a red circle"
    assert t.tool_call.source == 0


def test_answer_is_extracted():
    t = parse_turn("<think>it is green</think> <answer> (B) green </answer>")
    assert t.kind == "answer" and t.answer == "(B) green"


@pytest.mark.parametrize("text", [
    f"<tool_call>{json.dumps(CALL)}</tool_call> and then some chatter <answer>C</answer>",  # text after the call
    f"<tool_call>{json.dumps(CALL)}",  # closing tag eaten by the stop sequence
    f"<tool_call>\n```json\n{json.dumps(CALL)}\n```\n</tool_call>",  # code fence
    ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 110, 220,], '
    '"label": "a red circle",},}</tool_call>'),  # trailing commas
    ('<tool_call>{"name": "image_zoom_in_tool", "arguments": "{\\"bbox_2d\\": [10, 20, 110, 220], '
    '\\"label\\": \\"a red circle\\"}"}</tool_call>'),  # arguments as a JSON string
    ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": ["10", "20", "110", "220"], '
    '"label": "a red circle"}}</tool_call>'),  # numbers as strings
])
def test_tolerated_faults_recover_the_same_call(text):
    t = parse_turn(text)
    assert t.kind == "tool_call", t.error
    assert t.tool_call.bbox == [10.0, 20.0, 110.0, 220.0] and t.tool_call.label == "a red circle"


def test_trailing_comma_inside_a_string_is_kept():
    args = {"bbox_2d": [1, 2, 3, 4], "label": "a sign reading ',]' ,}"}
    t = parse_turn(f"<tool_call>{json.dumps({'name': 'image_zoom_in_tool', 'arguments': args})}</tool_call>")
    assert t.tool_call.label == "a sign reading ',]' ,}"


def test_answer_with_eaten_closing_tag():
    assert parse_turn("<think>x</think><answer>A").answer == "A"


@pytest.mark.parametrize("text,code", [
    ("I think it is red.", "no_action"),
    ("<tool_call>{'name': 'image_zoom_in_tool'}</tool_call>", "bad_json"),  # Python dict, not JSON: never eval
    ("<tool_call>__import__('os').system('true')</tool_call>", "bad_json"),
    ('<tool_call>{"name": "crop", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>', "unknown_tool"),
    ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3]}}</tool_call>', "bad_bbox"),
    (('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, "x", 4], "label": "a"}}'
     "</tool_call>"), "bad_bbox"),
    ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>',
     "missing_label"),
    (('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4], "label": "a", '
     '"source": -1}}</tool_call>'), "bad_source"),
    ('<tool_call>[1, 2, 3, 4]</tool_call>', "bad_json"),
    ("<tool_call></tool_call>", "bad_json"),
    ("<answer>   </answer>", "empty_answer"),
    ("the bbox is 1,2,3,4 </tool_call>", "missing_open_tag"),
    ('<tool_call>{"name": "image_zoom_in_tool"', "bad_json"),
])
def test_unrecoverable_turns_become_structured_errors(text, code):
    t = parse_turn(text)
    assert t.kind == "error" and t.error.code == code and t.error.message
    assert t.tool_call is None and t.answer is None


def test_first_action_decides_and_python_literals_are_never_evaluated():
    t = parse_turn("<answer>B</answer><tool_call>" + json.dumps(CALL) + "</tool_call>")
    assert t.kind == "answer" and t.answer == "B"
    t = parse_turn("<tool_call>" + json.dumps(CALL) + "</tool_call><answer>B</answer>")
    assert t.kind == "tool_call"


def test_label_optional_outside_label_mode_and_description_read():
    no_label = {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 30, 40], "source": 1}}
    text = f"<description>a red circle on grey</description><think>ok</think><tool_call>{json.dumps(no_label)}"
    t = parse_turn(text, require_label=False, expect_description=True)
    assert t.kind == "tool_call" and t.tool_call.label is None and t.tool_call.source == 1
    assert t.description == "a red circle on grey"
    assert parse_turn(text, require_label=True).error.code == "missing_label"
