"""The outcome reward of one trajectory: accuracy (+ optional format and tool terms)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from mapo.data.task import Task
from mapo.rewards.answer_span import extract_answer_span
from mapo.rewards.choice import extract_choice
from mapo.rewards.config import RewardConfig
from mapo.rewards.format_check import check_format
from mapo.rewards.judge import JudgeClient, JudgeConfig
from mapo.rewards.normalize import normalized_match, phrase_match

_MATCHERS = {"exact": normalized_match, "contains": phrase_match}


@lru_cache(maxsize=8)
def _judge_client(cfg_json: str) -> JudgeClient:
    return JudgeClient(JudgeConfig.model_validate_json(cfg_json))


def score_answer(answer_text: str | None, task: Task, cfg: RewardConfig) -> dict[str, Any]:
    """Is the answer correct? Returns ``{"correct": bool, "choice": letter | None, "method": str}``.

    Multiple choice: the letter from ``extract_choice`` must equal ``task.answer``. Free form: the normalised
    phrase match (default), exact match and/or the judge, as ``cfg.free_form`` says.
    """
    if not answer_text or not answer_text.strip():
        return {"correct": False, "choice": None, "method": "no_answer"}
    if task.is_multiple_choice:
        letter = extract_choice(answer_text, task.options)
        return {"correct": letter is not None and letter == task.answer.strip().upper(), "choice": letter,
                "method": "choice"}
    prediction = extract_answer_span(answer_text)
    rule = cfg.free_form.removesuffix("_then_judge")
    if rule in _MATCHERS:
        if _MATCHERS[rule](prediction, task.answer):
            return {"correct": True, "choice": None, "method": rule}
        if rule == cfg.free_form:
            return {"correct": False, "choice": None, "method": rule}
    if cfg.judge is None:
        raise ValueError(f"reward free_form={cfg.free_form!r} needs a judge: set judge.base_url and judge.model "
                         f"(an OpenAI-compatible server), or use free_form='contains'")
    ok = _judge_client(cfg.judge.model_dump_json()).judge(task.question, task.answer, prediction)
    return {"correct": ok, "choice": None, "method": "judge"}


def outcome_reward(answer_text: str | None, task: Task, cfg: RewardConfig | None = None, *,
                   response: str | None = None, successful_tool_calls: int = 0) -> tuple[float, dict[str, Any]]:
    """The scalar outcome reward of one trajectory and what it was made of.

    ``answer_text``: the trajectory's final answer (text inside ``<answer>``, or a whole reply; ``None`` when it
    never answered). ``response``: all assistant text, for the tag-balance format rules (optional).
    ``successful_tool_calls``: zooms that returned a crop, for the tool bonus.
    Info keys: ``correct``, ``choice``, ``method``, ``format_ok``, ``format_errors``, ``accuracy``,
    ``format``, ``tool``.
    """
    cfg = cfg or RewardConfig()
    info = score_answer(answer_text, task, cfg)
    fmt = check_format(response, answer_text, cfg.format)
    acc = 1.0 if info["correct"] else 0.0
    fmt_value = cfg.format_ok_value if fmt.ok else cfg.format_error_value
    if "answer_too_long" in fmt.errors:
        acc = 0.0  # DeepEyes' anti-hacking rule: a very long "answer" that lists everything earns nothing
    tool = 1.0 if successful_tool_calls > 0 and acc > 0 else 0.0
    reward = cfg.accuracy_weight * acc + cfg.format_weight * fmt_value + cfg.tool_weight * tool
    info.update(correct=bool(acc), accuracy=acc, format=fmt_value, tool=tool, format_ok=fmt.ok,
                format_errors=fmt.errors)
    return float(reward), info
