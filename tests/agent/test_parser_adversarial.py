"""Adversarial lengths through the parser: bounded time per turn, clear errors, bounded observations.

A turn with a code fence and a long run of whitespace used to take 0.6 s at 4,000 characters and hang at 1 MB
(a lazy ``(.*?)\\s*$`` regex); every shape below must parse in < 50 ms at 1 MB (best of 3, so a busy machine
does not decide the result).
"""

from __future__ import annotations

import json
import time

import pytest

from mapo.agent.parser import MAX_CALL_CHARS, parse_turn

MB = 1_000_000
CALL = '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 30, 40], "label": "x"}}'


def _shapes(n: int) -> dict[str, str]:
    return {
        "fence+spaces": "<tool_call>```json {" + " " * n + "}",
        "fence+newlines": "<tool_call>```{" + "\n" * n + "}</tool_call>",
        "fence+spaces+closing": "<tool_call>```json\n" + CALL + " " * n + "x```",
        "unclosed think": "<think>" * (n // 7),
        "think then description": "<think>" + "</think>" * (n // 8) + "<description>",
        "descriptions": " " * n + "<description>" * 3,
        "trailing commas": "<tool_call>{" + ", " * (n // 2),
        "commas and whitespace": "<tool_call>{" + ("," + " " * 50) * (n // 51),
        "open brackets": "<tool_call>" + "[" * n,
        "nested objects": "<tool_call>" + '{"a":' * (n // 5),
        "long digits": '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [' + "9" * n + ", 1, 2, 3]}}",
        "long name": '<tool_call>{"name": "' + "x" * n + '", "arguments": {}}</tool_call>',
        "long answer": "<answer>" + "A " * (n // 2),
        "plain text": "word " * (n // 5),
        "many tool calls": "<tool_call>" * (n // 11),
    }


@pytest.mark.parametrize("n", [4_000, 16_000, MAX_CALL_CHARS - 100, MB])
@pytest.mark.parametrize("shape", list(_shapes(10)))
def test_every_adversarial_shape_parses_in_under_50_ms(shape, n):
    text = _shapes(n)[shape]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        turn = parse_turn(text, expect_description=True)
        best = min(best, time.perf_counter() - t0)
    assert turn.kind in ("tool_call", "answer", "error")
    assert best < 0.05, f"{shape} at {n:,} chars took {best * 1000:.0f} ms"


def test_a_400_digit_coordinate_gets_a_clear_observation():
    call = {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [int("9" * 400), 1, 2, 3], "label": "x"}}
    turn = parse_turn(f"<tool_call>{json.dumps(call)}</tool_call>")
    assert turn.error is not None and turn.error.code == "bad_bbox"
    assert "too large" in turn.error.message and "OverflowError" not in turn.error.message


def test_an_unknown_tool_name_is_truncated_in_the_observation():
    name = "n" * (MAX_CALL_CHARS - 200)
    turn = parse_turn(f'<tool_call>{{"name": "{name}", "arguments": {{}}}}</tool_call>')
    assert turn.error is not None and turn.error.code == "unknown_tool"
    assert len(turn.error.message) < 200 and f"{len(name) + 2:,} characters" in turn.error.message


def test_a_runaway_tool_call_is_refused_with_the_fix():
    turn = parse_turn("<tool_call>" + CALL + " " * (2 * MAX_CALL_CHARS))
    assert turn.error is not None and turn.error.code == "call_too_long"
    assert "bbox_2d" in turn.error.message


def test_the_fence_still_parses_after_the_rewrite():
    for text in (f"<tool_call>```json\n{CALL}\n```</tool_call>", f"<tool_call>```{CALL}", f"<tool_call>  ```JSON {CALL} ``` "):
        turn = parse_turn(text)
        assert turn.tool_call is not None and turn.tool_call.bbox == [1, 2, 30, 40], text
    turn = parse_turn(f"<think>a</think> <description> red </description><tool_call>{CALL}", expect_description=True)
    assert (turn.think, turn.description) == ("a", "red")
