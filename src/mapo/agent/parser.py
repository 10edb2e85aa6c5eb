"""Parse one assistant turn into think / tool call / answer, or a structured error. JSON only, never ``eval``.

Tolerated, because the meaning stays unambiguous: text after ``</tool_call>``; a missing ``</tool_call>`` or
``</answer>`` (eaten by the stop sequence); a ```json code fence around the call; trailing commas; the
OpenAI habit of ``"arguments"`` as a JSON string; numbers written as strings. Anything else is a
``ParseError`` with a code and a message that tells the model how to fix it. ``parse_turn`` never raises.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from mapo.agent.protocol import TOOL_NAME

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_DESCRIPTION = re.compile(r"^\s*(?:<think>.*?</think>\s*)?<description>(.*?)</description>", re.DOTALL)
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*(.*?)\s*(?:```\s*)?$", re.DOTALL)


@dataclass
class ParseError:
    """Why a turn could not be understood. ``code`` is stable (for statistics); ``message`` is for the model."""

    code: str
    message: str


@dataclass
class ToolCall:
    """A well-formed zoom call. ``bbox`` is as written (unvalidated numbers; the tool repairs or rejects it)."""

    name: str
    bbox: list[float]
    label: str | None = None
    source: int = 0
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedTurn:
    """One assistant turn: exactly one of ``tool_call``, ``answer``, ``error`` is set."""

    text: str
    think: str | None = None
    description: str | None = None
    tool_call: ToolCall | None = None
    answer: str | None = None
    error: ParseError | None = None

    @property
    def kind(self) -> Literal["tool_call", "answer", "error"]:
        return "tool_call" if self.tool_call else "answer" if self.answer is not None else "error"

    @property
    def called_tool(self) -> bool:
        """The turn is a tool call, well-formed or not (its first action tag is ``<tool_call>``): the rule both
        trainers count calls by; a malformed one gets an error observation and scores ``failed_call_score``."""
        return self.tool_call is not None or opens_tool_call(self.text)


def opens_tool_call(text: str) -> bool:
    """``<tool_call>`` comes before any ``<answer>`` in ``text``: the turn tried to call the tool."""
    if not isinstance(text, str):
        return False
    call_at, answer_at = text.find("<tool_call>"), text.find("<answer>")
    return call_at >= 0 and (answer_at < 0 or call_at < answer_at)


def _strip_trailing_commas(s: str) -> str:
    """Remove commas directly before ``}`` or ``]`` outside JSON strings."""
    out: list[str] = []
    in_str = escaped = False
    for i, ch in enumerate(s):
        if in_str:
            out.append(ch)
            escaped = (ch == "\\") and not escaped
            if ch == '"' and not escaped:
                in_str = False
            continue
        if ch == '"':
            in_str, escaped = True, False
        elif ch == ",":
            j = i + 1
            while j < len(s) and s[j] in " \t\r\n":
                j += 1
            if j < len(s) and s[j] in "}]":
                continue
        out.append(ch)
    return "".join(out)


def _loads_object(raw: str) -> tuple[dict | None, str]:
    """Parse a JSON object with the safe repairs; returns (object, "") or (None, reason)."""
    m = _FENCE.match(raw)
    if m:
        raw = m.group(1)
    raw = raw.strip()
    if not raw:
        return None, "the tool call is empty"
    for candidate in (raw, _strip_trailing_commas(raw)):
        try:
            obj = json.loads(candidate)
        except (json.JSONDecodeError, RecursionError, ValueError):
            continue
        if isinstance(obj, dict):
            return obj, ""
        return None, f"the tool call must be a JSON object, got {type(obj).__name__}"
    # A closing tag eaten by the stop sequence can leave trailing text after the object: parse the first one.
    try:
        obj, _end = json.JSONDecoder().raw_decode(_strip_trailing_commas(raw))
        if isinstance(obj, dict):
            return obj, ""
    except (json.JSONDecodeError, RecursionError, ValueError):
        pass
    return None, "the tool call is not valid JSON"


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        try:
            return float(x.strip())
        except ValueError:
            return None
    return None


def _tool_call(obj: dict, require_label: bool) -> tuple[ToolCall | None, ParseError | None]:
    name = obj.get("name")
    if name != TOOL_NAME:
        return None, ParseError("unknown_tool", f"unknown tool {name!r}; the only tool is {TOOL_NAME!r}")
    args = obj.get("arguments", obj.get("parameters"))
    if isinstance(args, str):
        args, why = _loads_object(args)
        if args is None:
            return None, ParseError("bad_arguments", f"'arguments' is a string but not a JSON object ({why})")
    if not isinstance(args, dict):
        return None, ParseError("bad_arguments", "'arguments' must be a JSON object with 'bbox_2d'")
    bbox = args.get("bbox_2d")
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None, ParseError("bad_bbox", "'bbox_2d' must be a list of 4 numbers [x1, y1, x2, y2]")
    nums = [_number(v) for v in bbox]
    if any(v is None for v in nums):
        return None, ParseError("bad_bbox", "'bbox_2d' must hold 4 numbers [x1, y1, x2, y2]")
    label = args.get("label")
    if label is not None and not isinstance(label, str):
        label = json.dumps(label)
    if require_label and (label is None or not label.strip()):
        return None, ParseError("missing_label", "add a 'label' saying what you expect to see in the region")
    source = args.get("source", 0)
    src = _number(source) if source is not None else 0.0
    if src is None or not math.isfinite(src) or src != int(src) or src < 0:
        return None, ParseError("bad_source", "'source' must be a non-negative integer image index (0 = original)")
    return ToolCall(TOOL_NAME, [float(v) for v in nums], label.strip() if label else None, int(src), args), None


def parse_turn(text: str, *, require_label: bool = True, expect_description: bool = False) -> ParsedTurn:
    """Parse one assistant turn's text. Whichever of ``<tool_call>`` / ``<answer>`` comes first decides the
    turn (generation stops at its closing tag; anything after it is ignored). Never raises.

    ``require_label``: a call without a ``label`` is an error (label mode). ``expect_description``: read a
    leading ``<description>`` (description mode; the turn after an observation)."""
    try:
        return _parse(text, require_label, expect_description)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"; report instead
        return ParsedTurn(text=text, error=ParseError("internal", f"could not parse the turn ({type(exc).__name__})"))


def _parse(text: str, require_label: bool, expect_description: bool) -> ParsedTurn:
    if not isinstance(text, str):
        return ParsedTurn(text=str(text), error=ParseError("not_text", "the turn is not text"))
    turn = ParsedTurn(text=text)
    m = _THINK.search(text)
    turn.think = m.group(1).strip() if m else None
    if expect_description:
        d = _DESCRIPTION.search(text)
        turn.description = d.group(1).strip() if d else None
    call_at, answer_at = text.find("<tool_call>"), text.find("<answer>")
    if call_at < 0 and answer_at < 0:
        if "</tool_call>" in text or "</answer>" in text:
            turn.error = ParseError("missing_open_tag", "a closing tag has no opening <tool_call> or <answer>")
        else:
            turn.error = ParseError("no_action", "call the tool inside <tool_call></tool_call> or answer inside "
                                    "<answer></answer>")
        return turn
    if answer_at >= 0 and (call_at < 0 or answer_at < call_at):
        body = text[answer_at + len("<answer>"):]
        end = body.find("</answer>")
        answer = (body if end < 0 else body[:end]).strip()
        if not answer:
            turn.error = ParseError("empty_answer", "the <answer></answer> is empty; write the option letter in it")
        else:
            turn.answer = answer
        return turn
    body = text[call_at + len("<tool_call>"):]
    end = body.find("</tool_call>")
    if end >= 0:
        body = body[:end]
    if "<tool_call>" in body:
        turn.error = ParseError("multiple_tool_calls", "make exactly one tool call per turn")
        return turn
    obj, why = _loads_object(body)
    if obj is None:
        turn.error = ParseError("bad_json", f"{why}; write {{\"name\": \"{TOOL_NAME}\", \"arguments\": "
                                "{\"bbox_2d\": [x1, y1, x2, y2], ...}}")
        return turn
    turn.tool_call, turn.error = _tool_call(obj, require_label)
    return turn
