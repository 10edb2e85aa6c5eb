"""The thinking-with-images protocol (DeepEyes/Qwen-compatible): the tool schema, the system prompt that
describes it in the Qwen/Hermes tools style, the first user turn, and the observation / error turns.

An assistant turn looks like::

    <think> ... </think>
    <tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2], "label": "..."}}</tool_call>

and the tool's answer comes back as a user turn holding the crop::

    <|im_start|>user\\n<tool_response><|vision_start|><|image_pad|>...<|vision_end|></tool_response><|im_end|>

until the model writes ``<answer> ... </answer>``. In ``description`` mode the call has no ``label``; the model
instead opens the turn after each observation with ``<description> what the crop shows </description>``.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TOOL_NAME = "image_zoom_in_tool"
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
STOP_SEQUENCES = ("</tool_call>", "</answer>", "<|im_end|>")


class ProtocolConfig(BaseModel):
    """How the model is asked to think with images, and the limits of one episode."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["label", "description"] = Field(
        "label", description="label: the tool call carries what the model expects to see; description: the "
        "model writes <description> after each observation instead")
    coordinates: Literal["pixel", "relative"] = Field(
        "pixel", description="bbox_2d in pixels of the original image, or relative [0, 1] of the source image")
    allow_source: bool = Field(True, description="let a call crop from an earlier observation via 'source'")
    max_turns: int = Field(6, ge=1, description="most assistant turns per episode (a failed call counts)")
    max_new_tokens_per_turn: int = Field(256, ge=1, description="generation limit of one assistant turn")
    max_response_tokens: int = Field(
        2048, ge=1, description="limit of all response tokens (generated + observations) of one trajectory")
    image_max_pixels: int = Field(224 * 224, ge=1, description="pixel budget of the task image as shown")
    crop_max_pixels: int = Field(224 * 224, ge=1, description="pixel budget of each crop as shown")
    crop_min_pixels: int = Field(
        4 * 28 * 28, ge=1, description="smallest area a crop is shown at: smaller crops are magnified up to it "
        "(set it to crop_max_pixels to show every zoom filling the budget)")
    trajectory_max_pixels: int = Field(
        224 * 224 * 7, ge=1, description="pixel budget of all images of one trajectory; over it, a call "
        "gets an error observation")
    box_repair: Literal["tell", "refuse"] = Field(
        "tell", description="tell: an inverted or out-of-image box is swapped/clamped, run, and the observation "
        "says what was changed; refuse: such a box gets an error observation instead (docs/protocol.md)")
    temperature: float = Field(1.0, ge=0.0, description="sampling temperature; 0 = greedy")
    kv_cache: bool = Field(
        True, description="keep each trajectory's KV cache between turns and encode only the new tokens (the "
        "observation's text and image); the same tokens as re-encoding the whole context each turn. Backends that "
        "cannot (no M-RoPE index, sliding-window layers) re-encode regardless")
    system_prompt: str | None = Field(None, description="replace the built-in system prompt (tool text kept)")
    tools_prompt: Literal["hermes", "compact"] = Field(
        "hermes", description="hermes: the tool as a JSON schema in Qwen's <tools> block (what Qwen-VL checkpoints "
        "know); compact: one example call (~60 tokens instead of ~330, for the tiny models trained from scratch)")


def tool_schema(cfg: ProtocolConfig) -> dict:
    """The zoom tool as an OpenAI/Qwen function schema."""
    coords = ("[x1, y1, x2, y2] in pixels of the original image (origin top-left)" if cfg.coordinates == "pixel"
              else "[x1, y1, x2, y2] as fractions in [0, 1] of the source image's width and height")
    props: dict = {"bbox_2d": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                               "description": f"The region to zoom into: {coords}."}}
    required = ["bbox_2d"]
    if cfg.mode == "label":
        props["label"] = {"type": "string",
                          "description": "A short description of what you expect to see in the region."}
        required.append("label")
    if cfg.allow_source:
        props["source"] = {"type": "integer", "description": "Which image to crop from: 0 = the original image "
                           "(default), k = the k-th zoomed observation."}
    return {"type": "function", "function": {
        "name": TOOL_NAME, "description": "Zoom in on a region of the image and return it at a higher resolution.",
        "parameters": {"type": "object", "properties": props, "required": required}}}


DEFAULT_SYSTEM = (
    "You are a careful visual assistant. Think step by step inside <think> </think>. When a detail is too small "
    "to read, zoom in with the tool. When you are sure, give the final answer inside <answer> </answer>.")


def system_prompt(cfg: ProtocolConfig) -> str:
    """The system text: instructions plus the tool, described in the Qwen/Hermes ``<tools>`` style."""
    head = cfg.system_prompt or DEFAULT_SYSTEM
    if cfg.mode == "description":
        head += (" After each zoomed image, first describe what it shows inside <description> </description>.")
    if cfg.tools_prompt == "compact":
        return f"{head}\n{compact_tool_text(cfg)}"
    return (f"{head}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            f"{json.dumps(tool_schema(cfg))}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def compact_tool_text(cfg: ProtocolConfig) -> str:
    """The tool in one example call and one line of argument meanings (the ``compact`` tools prompt)."""
    coords = "pixels of the original image" if cfg.coordinates == "pixel" else "fractions [0, 1] of the image"
    arguments: dict = {"bbox_2d": ["x1", "y1", "x2", "y2"]}
    notes = [f"bbox_2d in {coords}"]
    if cfg.mode == "label":
        arguments["label"] = "what you expect to see"
    if cfg.allow_source:
        notes.append("optional source: k crops from the k-th zoomed image")
    call = json.dumps({"name": TOOL_NAME, "arguments": arguments}).replace('"x1", "y1", "x2", "y2"', "x1, y1, x2, y2")
    return f"Zoom in with <tool_call>{call}</tool_call> ({'; '.join(notes)})."


def user_text(question: str, options_block: str, width: int, height: int, cfg: ProtocolConfig) -> str:
    """The question as the user asks it (the image placeholder goes before it)."""
    size = f"The original image is {width}x{height} pixels." if cfg.coordinates == "pixel" else ""
    parts = [question.strip()]
    if options_block:
        parts.append(options_block)
        parts.append("Answer with the option's letter.")
    if size:
        parts.append(size)
    return "\n".join(parts)


def prompt_messages(question: str, options_block: str, width: int, height: int, cfg: ProtocolConfig) -> list:
    """Chat messages of the prompt: system (with the tool) and the user turn holding the image."""
    return [
        {"role": "system", "content": system_prompt(cfg)},
        {"role": "user", "content": [{"type": "image"},
                                     {"type": "text", "text": user_text(question, options_block, width, height,
                                                                        cfg)}]},
    ]


def observation_text(n_images: int, note: str = "") -> str:
    """The user turn that returns a tool result: closes the assistant turn, opens the next one.
    ``n_images`` is 0 (error / text only) or 1; ``note`` is text after the image (an error message)."""
    body = IMAGE_PLACEHOLDER * n_images + note
    return f"<|im_end|>\n<|im_start|>user\n<tool_response>{body}</tool_response><|im_end|>\n<|im_start|>assistant\n"


def error_note(message: str) -> str:
    """The text the model sees when its turn could not be executed (the episode continues)."""
    return f"Error: {message}"
