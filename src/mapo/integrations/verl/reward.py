"""verl reward function for multiple-choice (and exact-match) answers, built on :mod:`mapo.rewards`.

Config: ``reward.custom_reward_function.path=<this file>`` and ``name=compute_score`` (the launch configs
set both); ``reward.custom_reward_function.reward_kwargs.preset=deepeyes`` picks a reward preset.
verl's reward manager calls it once per trajectory with the decoded response; the rollout's
``extra_fields`` (mapo's per-call records) arrive merged into ``extra_info``.
"""

from __future__ import annotations

from typing import Any

from mapo.data.task import Task
from mapo.integrations.verl.turns import TURNS_KEY
from mapo.rewards.answer_span import extract_answer_span
from mapo.rewards.config import RewardConfig
from mapo.rewards.outcome import outcome_reward


def _plain(value: Any) -> Any:
    """numpy arrays / OmegaConf containers from a parquet row -> Python lists (for options)."""
    return value.tolist() if hasattr(value, "tolist") else value


def task_from_row(ground_truth: Any, extra_info: dict[str, Any] | None) -> Task:
    """The :class:`Task` a reward needs from a DeepEyes-style row: options and answer letter from
    ``extra_info`` (the embedded world's export), else ``ground_truth`` as the reference. A ground truth that
    is a letter with options present is the letter; otherwise it is free-form text."""
    info = dict(extra_info or {})
    options = [str(o) for o in (_plain(info.get("options")) or [])]
    answer = str(info.get("answer") or ground_truth or "").strip()
    return Task(id=str(info.get("id", info.get("index", ""))), image=None, question=str(info.get("question", "")),
                answer=answer, options=options)


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any] | None = None,
                  preset: str = "accuracy", **_: Any) -> dict[str, Any]:
    """``{"score": reward, "acc": 0/1, "tool_calls": n, "alignment": mean call score}`` for one trajectory.

    ``solution_str``: the whole decoded response (all turns); the answer is the last ``<answer>...</answer>``.
    ``preset``: :meth:`RewardConfig.preset` name (``accuracy``, ``deepeyes``, ``cof``).
    """
    task = task_from_row(ground_truth, extra_info)
    records = list(_plain((extra_info or {}).get(TURNS_KEY)) or [])
    successful = sum(1 for r in records if r.get("ok"))
    # Only an <answer> block counts: a letter mentioned while thinking must not score.
    answer = extract_answer_span(solution_str) if "<answer>" in solution_str.lower() else None
    reward, info = outcome_reward(answer, task, RewardConfig.preset(preset),
                                  response=solution_str, successful_tool_calls=successful)
    scores = [float(r["score"]) for r in records if r.get("ok")]
    return {"score": reward, "acc": float(info["accuracy"]), "tool_calls": float(len(records)),
            "alignment": sum(scores) / len(scores) if scores else 0.0}
