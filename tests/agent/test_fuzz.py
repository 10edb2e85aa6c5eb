"""100,000 random and mutated model outputs through the parser and the zoom tool: no exception escapes, and
every outcome is a parsed call, an answer, or a structured error."""

from __future__ import annotations

import json
import random

import numpy as np
from PIL import Image

from mapo.agent.parser import ParsedTurn, parse_turn
from mapo.agent.zoom import View, ZoomConfig, ZoomTool
from mapo.data.task import Box

N = 100_000
PIECES = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>", "<description>",
          "</description>", "{", "}", "[", "]", ",", ":", '"', "'", "```json", "```", "\\", "NaN", "Infinity",
          "-1e999", "1e400", "null", "true", '"bbox_2d"', '"label"', '"source"', '"name"', '"arguments"',
          '"image_zoom_in_tool"', "\n", " ", "0", "-3", "12.5", "99999", "\x00", "\u2603", "<|im_end|>"]
SEEDS = [
    {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 200, 220], "label": "a red circle"}},
    {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0.1, 0.2, 0.5, 0.9], "label": "x", "source": 1}},
    {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [500, 400, -20, 9000], "label": ""}},
]


def mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randint(0, len(chars))
        if op < 0.35 and chars:
            del chars[min(pos, len(chars) - 1): min(pos + rng.randint(1, 6), len(chars))]
        elif op < 0.7:
            chars[pos:pos] = list(rng.choice(PIECES))
        elif op < 0.85 and chars:
            chars[min(pos, len(chars) - 1)] = chr(rng.randint(0, 0x2FF))
        else:
            chars = chars[:pos]  # truncation, as a token limit does
    return "".join(chars)


def random_output(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))
    if kind < 0.25:
        return "".join(chr(rng.randint(0, 0x10FF)) for _ in range(rng.randint(0, 60)))
    seed = json.loads(json.dumps(rng.choice(SEEDS)))
    box = seed["arguments"]["bbox_2d"]
    for i in range(4):
        if rng.random() < 0.3:
            box[i] = rng.choice([float("nan"), float("inf"), -1e6, 1e6, rng.uniform(-700, 1400), "7", None, [1]])
    text = f"<think>look</think><tool_call>{json.dumps(seed)}</tool_call>"
    if rng.random() < 0.2:
        text = "<think>done</think><answer>" + rng.choice(["A", "(B) green", "", " "]) + "</answer>"
    return mutate(rng, text) if rng.random() < 0.8 else text


def test_parser_and_tool_never_raise_and_always_classify():
    rng = random.Random(0)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    shown = img.resize((56, 56))
    views = [View(Box(0, 0, 128, 96), shown), View(Box(32, 16, 96, 80), shown)]
    tools = [ZoomTool(ZoomConfig(crop_max_pixels=28 * 28 * 4)),
             ZoomTool(ZoomConfig(coordinates="relative", crop_max_pixels=28 * 28 * 4))]
    kinds = {"tool_call": 0, "answer": 0, "error": 0}
    executed = failed = 0
    for i in range(N):
        text = random_output(rng)
        turn = parse_turn(text, require_label=i % 2 == 0, expect_description=i % 3 == 0)
        assert isinstance(turn, ParsedTurn)
        set_fields = [turn.tool_call is not None, turn.answer is not None, turn.error is not None]
        assert sum(set_fields) == 1, text  # exactly one outcome
        kinds[turn.kind] += 1
        if turn.error is not None:
            assert turn.error.code and turn.error.message
        if turn.tool_call is not None:
            result = tools[i % 2].execute(turn.tool_call.bbox, img, views, turn.tool_call.source)
            if result.ok:
                executed += 1
                b = result.box_executed
                assert 0 <= b.x1 < b.x2 <= 128 and 0 <= b.y1 < b.y2 <= 96
                assert result.crop.size == (b.x2 - b.x1, b.y2 - b.y1)
            else:
                failed += 1
                assert result.error and result.crop is None
    # the generator reaches every outcome, so the assertions above were exercised
    assert min(kinds.values()) > 1000 and executed > 1000 and failed > 1000, (kinds, executed, failed)
