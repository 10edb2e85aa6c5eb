"""The record of one rollout: token ids with masks and sampling log-probs, and what happened in each turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from PIL import Image

from mapo.agent.parser import ParsedTurn
from mapo.agent.zoom import ToolResult
from mapo.data.task import Task

StopReason = Literal["answer", "max_turns", "max_response_tokens", "no_stop"]


@dataclass
class TurnRecord:
    """One assistant turn: its text, how it parsed, and the tool's result when it called the tool.

    ``span`` is [start, end) of the turn's generated tokens in ``response_ids``. ``description`` is filled in
    description mode from the next turn's ``<description>`` (None when the model did not write one)."""

    index: int
    text: str
    parsed: ParsedTurn
    span: tuple[int, int]
    tool: ToolResult | None = None
    description: str | None = None
    truncated: bool = False
    """The turn hit the per-turn or per-trajectory token limit before a stop sequence."""

    @property
    def label(self) -> str | None:
        return self.parsed.tool_call.label if self.parsed.tool_call else None

    @property
    def claim(self) -> str | None:
        """The text the verifier scores against the crop: the label, or the description in description mode."""
        return self.description if self.description is not None else self.label


@dataclass
class Trajectory:
    """One rollout of one task. Response tensors all have length L (= len(response_ids)).

    ``response_mask`` is 1 on generated tokens and 0 on observation tokens (image pads included);
    ``old_logprobs`` are the sampling log-probs (0 where the mask is 0); ``token_turn`` is the assistant turn
    of each token, -1 on observation tokens. ``images`` are the images the model was fed, in order: the task
    image, then each crop as shown; the image pads in ``prompt_ids + response_ids`` match them exactly."""

    task: Task
    sample_index: int
    prompt_ids: torch.Tensor
    response_ids: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    response_mask: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    old_logprobs: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    token_turn: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    turns: list[TurnRecord] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    answer: str | None = None
    stop_reason: StopReason | None = None
    hit_turn_cap: bool = False

    @property
    def tool_calls(self) -> list[TurnRecord]:
        """Turns that called the tool, whether or not the call succeeded: malformed calls (bad JSON, unknown
        tool, bad box) included, as under verl (:attr:`ParsedTurn.called_tool`); ``tool`` is None for those."""
        return [t for t in self.turns if t.parsed.called_tool]

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def full_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids])
