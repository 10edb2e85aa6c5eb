import math

import pytest
import torch
from PIL import Image

from mapo.agent.call_scores import score_tool_calls
from mapo.agent.parser import ParsedTurn, ToolCall
from mapo.agent.trajectory import Trajectory, TurnRecord
from mapo.agent.zoom import ToolResult
from mapo.data.task import Box, Task
from mapo.train.batch import rl_batch
from mapo.train.rollout_stats import batch_stats

TARGET = Box(100, 100, 120, 120)


def _task():
    return Task(id="t", image=Image.new("RGB", (400, 400)), question="q", answer="A", options=["x", "y"],
                targets=[TARGET])


def _call_turn(index, span, box, ok=True, label="red"):
    parsed = ParsedTurn(text="c", tool_call=ToolCall(name="image_zoom_in_tool", bbox=box.as_list(), label=label))
    tool = ToolResult(box_asked=box.as_list(), box_executed=box if ok else None,
                      crop=Image.new("RGB", (8, 8)) if ok else None, error=None if ok else "bad box")
    return TurnRecord(index=index, text="c", parsed=parsed, span=span, tool=tool)


def _answer_turn(index, span):
    return TurnRecord(index=index, text="a", parsed=ParsedTurn(text="a", answer="A"), span=span)


def _traj(turns, token_turn, answer="A"):
    token_turn = torch.tensor(token_turn)
    return Trajectory(task=_task(), sample_index=0, prompt_ids=torch.zeros(3, dtype=torch.long),
                      response_ids=torch.arange(len(token_turn)), response_mask=(token_turn >= 0).long(),
                      old_logprobs=torch.zeros(len(token_turn)), token_turn=token_turn, turns=turns, answer=answer)


class _Verifier:
    """Scores each claim by its length, so a test can tell which call got which score."""

    def __init__(self):
        self.batches = []

    def score(self, texts, images):
        self.batches.append(list(texts))
        return torch.tensor([len(t) / 10 for t in texts])


def _malformed_turn(index, span, text='<tool_call>{"name": "image_zoom_in_tool", "arguments": {bad</tool_call>'):
    from mapo.agent.parser import parse_turn

    return TurnRecord(index=index, text=text, parsed=parse_turn(text), span=span)


def test_token_turn_maps_assistant_turns_to_tool_call_indices():
    # turn 0: no action at all (not a call), turn 1: call 0, turn 2: call 1, turn 3: answer
    bad = TurnRecord(index=0, text="x", parsed=ParsedTurn(text="x"), span=(0, 1))
    t = _traj([bad, _call_turn(1, (2, 3), TARGET, label="red"), _call_turn(2, (5, 6), Box(0, 0, 50, 50), label="blue"),
               _answer_turn(3, (8, 9))], [0, -1, 1, -1, -1, 2, -1, -1, 3])
    verifier = _Verifier()
    turns = score_tool_calls([t], verifier)
    assert turns.tensors["token_turn"].tolist() == [[2, -1, 0, -1, -1, 1, -1, -1, 2]]
    assert verifier.batches == [["red", "blue"]]  # one verifier call for the batch, claims in call order
    assert turns.calls == [[(1, pytest.approx(0.3)), (2, pytest.approx(0.4))]]


def test_a_malformed_call_counts_as_a_failed_call():
    """The one rule (as under verl): a turn that opened <tool_call> is a call; without a crop it scores
    failed_call_score, and its tokens belong to that call, not to the answer."""
    t = _traj([_malformed_turn(0, (0, 2)), _call_turn(1, (3, 4), TARGET, label="red"), _answer_turn(2, (5, 6))],
              [0, 0, -1, 1, -1, 2])
    assert len(t.tool_calls) == 2 and t.tool_calls[0].tool is None
    turns = score_tool_calls([t], _Verifier(), failed_call_score=-0.7)
    assert turns.calls == [[(0, None), (1, pytest.approx(0.3))]]
    assert turns.tensors["turn_scores"].tolist() == [[pytest.approx(-0.7), pytest.approx(0.3)]]
    assert turns.tensors["turn_mask"].tolist() == [[1.0, 1.0]]
    assert turns.tensors["token_turn"].tolist() == [[0, 0, -1, 1, -1, 2]]
    assert turns.scores() == [pytest.approx(0.3)] and turns.by_turn(0) == {1: pytest.approx(0.3)}


def test_a_call_the_tool_rejected_scores_failed_call_score():
    t = _traj([_call_turn(0, (0, 1), TARGET, ok=False), _answer_turn(1, (2, 3))], [0, -1, 1])
    verifier = _Verifier()
    turns = score_tool_calls([t], verifier, failed_call_score=-1.0)
    assert verifier.batches == []  # nothing to score: no verifier call at all
    assert turns.tensors["turn_scores"].tolist() == [[-1.0]]


def test_rl_batch_puts_the_reward_on_the_last_generated_token():
    a = _traj([_answer_turn(0, (0, 2))], [0, 0, -1])
    b = _traj([_call_turn(0, (0, 1), TARGET), _answer_turn(1, (3, 4))], [0, -1, -1, 1, 1])
    batch = rl_batch([a, b], [1.0, 0.5])
    assert batch["token_level_rewards"].tolist() == [[0, 1.0, 0, 0, 0], [0, 0, 0, 0, 0.5]]
    assert batch["response_mask"].tolist() == [[1, 1, 0, 0, 0], [1, 0, 0, 1, 1]]
    turns = score_tool_calls([a, b], _Verifier())
    assert turns.tensors["token_turn"].tolist() == [[0, 0, -1, -1, -1], [0, -1, -1, 1, 1]]
    assert turns.tensors["turn_mask"].tolist() == [[0.0], [1.0]]
    assert turns.tensors["turn_scores"][1, 0].item() == pytest.approx(0.3)


def test_batch_stats_measure_hits_and_the_gap():
    hit = _traj([_call_turn(0, (0, 1), Box(90, 90, 130, 130)), _answer_turn(1, (2, 3))], [0, -1, 1])
    miss = _traj([_call_turn(0, (0, 1), Box(300, 300, 350, 350)), _answer_turn(1, (2, 3))], [0, -1, 1])
    failed = _traj([_call_turn(0, (0, 1), TARGET, ok=False), _answer_turn(1, (2, 3))], [0, -1, 1], answer="B")
    none = _traj([_answer_turn(0, (0, 1))], [0])
    infos = [{"correct": True}, {"correct": True}, {"correct": False, "format_ok": False}, {"correct": True}]
    s = batch_stats([hit, miss, failed, none], infos, [[0.5], [-0.5], [-1.0], []])
    assert s["accuracy"] == 0.75
    assert s["tool_call_rate"] == 0.75 and s["valid_call_rate"] == pytest.approx(2 / 3)
    assert s["zoom_hit_rate"] == 0.5 and s["crop_hit_rate"] == 0.5
    assert s["gap"] == 0.5  # of the correct trajectories that zoomed, one missed
    assert s["format_error_rate"] == 0.25
    assert s["alignment"] == pytest.approx(-1.0 / 3)
    assert s["crop_iou"] == pytest.approx((400 / 1600) / 2)
    assert s["first_turn_call_rate"] == 0.75
    assert not math.isnan(s["response_length"])
