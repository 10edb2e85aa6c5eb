"""The outcome-reward config: ``reward = accuracy_weight * acc + format_weight * fmt + tool_weight * tool``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mapo.rewards.format_check import FormatConfig
from mapo.rewards.judge import JudgeConfig


class RewardConfig(BaseModel):
    """Weights and rules of the outcome reward. Defaults: reward = accuracy (0/1), no format or tool term.

    DeepEyes: ``RewardConfig.preset("deepeyes")`` = 0.8 acc + 0.2 fmt (0 ok / -1 error) + 1.2 [tool used and
    correct]; Chain-of-Focus: ``preset("cof")`` = 0.9 acc + 0.1 fmt (1 ok / 0 error).
    """

    model_config = ConfigDict(extra="forbid")

    accuracy_weight: float = Field(1.0, description="Weight of accuracy (1 correct, 0 wrong).")
    format_weight: float = Field(0.0, description="Weight of the format term.")
    format_ok_value: float = Field(1.0, description="Format term when the response is well-formed.")
    format_error_value: float = Field(0.0, description="Format term on a format error (DeepEyes: -1).")
    tool_weight: float = Field(0.0, description="Weight of the tool bonus (1 when a zoom succeeded and the answer is correct).")
    format: FormatConfig = Field(default_factory=FormatConfig, description="The format rules.")
    free_form: Literal["contains", "exact", "judge", "contains_then_judge", "exact_then_judge"] = Field(
        "contains", description="How free-form (no options) answers are scored: contains = the normalised reference "
                                "as a whole-word phrase of a short, unhedged answer ('The umbrella is red.' "
                                "matches 'red'); exact = normalised equality; judge = the LLM judge; *_then_judge = "
                                "that match, with the judge for what it does not accept.")
    judge: JudgeConfig | None = Field(None, description="The LLM judge (only for free-form answers).")

    @classmethod
    def preset(cls, name: str) -> RewardConfig:
        """Named reward combinations from the literature: ``accuracy``, ``deepeyes``, ``cof``."""
        presets = {
            "accuracy": {},
            "deepeyes": {"accuracy_weight": 0.8, "format_weight": 0.2, "format_ok_value": 0.0,
                         "format_error_value": -1.0, "tool_weight": 1.2},
            "cof": {"accuracy_weight": 0.9, "format_weight": 0.1},
        }
        if name not in presets:
            raise ValueError(f"unknown reward preset {name!r}; choose one of {sorted(presets)}")
        return cls(**presets[name])
