"""The format term: is a response well-formed under the thinking-with-images protocol?"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class FormatConfig(BaseModel):
    """Which format rules a response must satisfy (each rule can be switched off)."""

    model_config = ConfigDict(extra="forbid")

    require_answer: bool = Field(True, description="An <answer>...</answer> (or, without a response, an answer) must be present.")
    balanced_think: bool = Field(True, description="Every <think> has its </think>.")
    single_answer: bool = Field(True, description="At most one <answer>...</answer> block, tags balanced.")
    max_answer_chars: int = Field(1000, description="Answers this long or longer are a format error (DeepEyes' anti-hacking rule); 0 disables.")


@dataclass
class FormatReport:
    """Result of the format check: ``ok`` and the names of the rules that failed."""

    ok: bool
    errors: list[str] = field(default_factory=list)


def _count(tag: str, text: str) -> int:
    return len(re.findall(re.escape(tag), text, flags=re.IGNORECASE))


def check_format(response: str | None, answer: str | None, cfg: FormatConfig) -> FormatReport:
    """Check ``response`` (all assistant text of a trajectory, may be ``None`` when unknown) and the extracted
    ``answer`` against ``cfg``. Without a response only the answer rules are checked."""
    errors: list[str] = []
    has_answer = bool(answer and answer.strip())
    if response is not None:
        n_open, n_close = _count("<answer>", response), _count("</answer>", response)
        has_answer = has_answer or n_open > 0
        if cfg.single_answer and (n_open > 1 or n_close > 1 or n_close > n_open):
            errors.append("answer_tags")
        if cfg.balanced_think and _count("<think>", response) != _count("</think>", response):
            errors.append("think_tags")
    if cfg.require_answer and not has_answer:
        errors.append("no_answer")
    if cfg.max_answer_chars and answer and len(answer) >= cfg.max_answer_chars:
        errors.append("answer_too_long")
    return FormatReport(ok=not errors, errors=errors)
