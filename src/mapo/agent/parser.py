"""Parse one assistant turn into think / tool call / answer, or a structured error. JSON only, never ``eval``.

Tolerated, because the meaning stays unambiguous: text after ``</tool_call>``; a missing ``</tool_call>`` or
``</answer>`` (eaten by the stop sequence); a ```json code fence around the call; trailing commas; the
OpenAI habit of ``"arguments"`` as a JSON string; numbers written as strings. Anything else is a
``ParseError`` with a code and a message that tells the model how to fix it. ``parse_turn`` never raises.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from mapo.agent.protocol import TOOL_NAME

#: Longest tool-call body parsed (a box and a label fit in a few hundred characters); a longer one is an error,
#: which bounds the JSON work on a runaway turn.
MAX_CALL_CHARS = 8192
#: Longest tool name echoed back in an error observation (a 1 MB name must not become a 1 MB observation).
MAX_ECHO_CHARS = 64


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


def _think(text: str) -> str | None:
    """The text of the first ``<think>`` block (to the end of the turn when it is not closed)."""
    start = text.find("<think>")
    if start < 0:
        return None
    start += len("<think>")
    end = text.find("</think>", start)
    return (text[start:] if end < 0 else text[start:end]).strip()


def _description(text: str) -> str | None:
    """A ``<description>`` that opens the turn (after an optional ``<think>`` block), or None."""
    rest = text.lstrip()
    if rest.startswith("<think>"):
        end = rest.find("</think>")
        if end < 0:
            return None
        rest = rest[end + len("</think>"):].lstrip()
    if not rest.startswith("<description>"):
        return None
    end = rest.find("</description>")
    return None if end < 0 else rest[len("<description>"):end].strip()


def _strip_fence(raw: str) -> str:
    """The body of a ```json code fence (closing fence optional), or ``raw`` unchanged when there is none.

    String operations, not a regex: a lazy ``(.*?)\\s*$`` pattern is quadratic on a long run of whitespace."""
    body = raw.strip()
    if not body.startswith("```"):
        return raw
    body = body[3:]
    if body[:4] in ("json", "JSON"):
        body = body[4:]
    body = body.rstrip()
    return body.removesuffix("```")


def _echo(value: Any) -> str:
    """``repr(value)`` cut to ``MAX_ECHO_CHARS``, for error observations that quote what the model wrote."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO_CHARS else f"{text[:MAX_ECHO_CHARS]}... ({len(text):,} characters)"


def _loads_object(raw: str) -> tuple[dict | None, str]:
    """Parse a JSON object with the safe repairs; returns (object, "") or (None, reason)."""
    raw = _strip_fence(raw).strip()
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


class _TooLarge(ValueError):
    """A coordinate too large to be a float (a 400-digit integer)."""


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        if isinstance(x, (int, float)):
            return float(x)
        if isinstance(x, str):
            return float(x.strip())
    except OverflowError as exc:
        raise _TooLarge from exc
    except ValueError:
        return None
    return None


def _tool_call(obj: dict, require_label: bool) -> tuple[ToolCall | None, ParseError | None]:
    name = obj.get("name")
    if name != TOOL_NAME:
        return None, ParseError("unknown_tool", f"unknown tool {_echo(name)}; the only tool is {TOOL_NAME!r}")
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
    try:
        nums = [_number(v) for v in bbox]
    except _TooLarge:
        return None, ParseError("bad_bbox", "'bbox_2d' holds a number too large to be a coordinate; give 4 "
                                "pixel coordinates inside the image [x1, y1, x2, y2]")
    if any(v is None for v in nums):
        return None, ParseError("bad_bbox", "'bbox_2d' must hold 4 numbers [x1, y1, x2, y2]")
    label = args.get("label")
    if label is not None and not isinstance(label, str):
        label = json.dumps(label)
    if require_label and (label is None or not label.strip()):
        return None, ParseError("missing_label", "add a 'label' saying what you expect to see in the region")
    source = args.get("source", 0)
    try:
        src = _number(source) if source is not None else 0.0
    except _TooLarge:
        src = None
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
    turn.think = _think(text)
    if expect_description:
        turn.description = _description(text)
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
    if len(body) > MAX_CALL_CHARS:
        turn.error = ParseError("call_too_long", f"the tool call is {len(body):,} characters; write only "
                                f"{{\"name\": \"{TOOL_NAME}\", \"arguments\": {{\"bbox_2d\": [x1, y1, x2, y2], ...}}}} "
                                f"(at most {MAX_CALL_CHARS:,} characters)")
        return turn
    obj, why = _loads_object(body)
    if obj is None:
        turn.error = ParseError("bad_json", f"{why}; write {{\"name\": \"{TOOL_NAME}\", \"arguments\": "
                                "{\"bbox_2d\": [x1, y1, x2, y2], ...}}")
        return turn
    turn.tool_call, turn.error = _tool_call(obj, require_label)
    return turn
