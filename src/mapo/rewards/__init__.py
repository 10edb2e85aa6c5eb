"""Outcome rewards: multiple-choice matching, normalised exact match, format checks, an optional LLM judge."""

from mapo.rewards.choice import extract_choice
from mapo.rewards.config import RewardConfig
from mapo.rewards.format_check import FormatConfig, check_format
from mapo.rewards.judge import JudgeClient, JudgeConfig, JudgeError
from mapo.rewards.outcome import outcome_reward, score_answer

__all__ = [
           "FormatConfig",
           "JudgeClient",
           "JudgeConfig",
           "JudgeError",
           "RewardConfig",
           "check_format",
           "extract_choice",
           "outcome_reward",
           "score_answer",
]
