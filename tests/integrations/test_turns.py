"""Carried per-call records -> mapo.core's turn tensors."""

from __future__ import annotations

import pytest
import torch

from mapo.core.semantic import pad_turn_scores
from mapo.core.turns import calls_per_turn
from mapo.integrations.verl.turns import assistant_turn_of_tokens, record_calls, turn_tensors


def test_assistant_turns_are_runs_of_the_response_mask():
    mask = torch.tensor([[1, 1, 0, 0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0]])
    assert assistant_turn_of_tokens(mask).tolist() == [
        [0, 0, -1, -1, 1, -1, 2, 2, -1], [-1] * 9]


def test_turn_tensors_map_answer_turns_to_the_call_count():
    # row 0: turn 0 zooms (ok), turn 1 zooms (failed), turn 2 answers; row 1: answers at once
    mask = torch.tensor([[1, 1, 0, 1, 0, 0, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0]])
    records = [[{"turn": 0, "score": 0.5, "ok": True}, {"turn": 1, "score": 0.9, "ok": False}], None]
    out = turn_tensors(records, mask, failed_call_score=-0.7)
    assert torch.allclose(out["turn_scores"], torch.tensor([[0.5, -0.7], [0.0, 0.0]]))
    assert out["turn_mask"].tolist() == [[1, 1], [0, 0]]
    assert out["token_turn"].tolist() == [[0, 0, -1, 1, -1, -1, 2, 2], [0, 0, 0, -1, -1, -1, -1, -1]]


def test_parallel_calls_in_one_turn_are_averaged_into_one_call():
    records = [{"turn": 0, "score": 0.2, "ok": True}, {"turn": 0, "score": 0.4, "ok": True},
               {"turn": 2, "score": 0.1, "ok": True}]
    assert calls_per_turn(record_calls(records)) == pytest.approx({0: 0.3, 2: 0.1})


def test_turn_tensors_match_the_generated_structure(multi_turn_batch):
    for seed in range(5):
        b = multi_turn_batch(seed)
        out = turn_tensors(b.records, b.response_mask)
        expected_scores, expected_mask = pad_turn_scores(b.scores)
        assert torch.allclose(out["turn_scores"], expected_scores)
        assert torch.equal(out["turn_mask"], expected_mask)
        assert torch.equal(out["token_turn"], b.token_turn)


def test_row_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="rows of 'mapo_turns'"):
        turn_tensors([None], torch.ones(2, 3))


def test_both_trainers_build_the_same_tensors_for_the_same_trajectory():
    """One trajectory: a malformed call (turn 0), a zoom the tool rejects (turn 1), a good zoom (turn 2), the
    answer (turn 3). `mapo train` scores it from its Trajectory; verl from the records its agent loop carries
    and its response mask. The failed-call rule and the token-to-call mapping must give the same tensors."""
    from PIL import Image

    from mapo.agent.call_scores import score_tool_calls
    from mapo.agent.parser import parse_turn
    from mapo.agent.trajectory import Trajectory, TurnRecord
    from mapo.agent.zoom import ToolResult
    from mapo.data.task import Box, Task

    class Verifier:
        def score(self, texts, images):
            return torch.full((len(texts),), 0.25)

    texts = ['<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2]}}</tool_call>',
             ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [900, 900, 990, 990], '
              '"label": "x"}}</tool_call>'),
             ('<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 50, 50], "label": "red"}}'
              '</tool_call>'), "<answer>A</answer>"]
    tools = [None, ToolResult(box_asked=[900, 900, 990, 990], error="outside the image"),
             ToolResult(box_asked=[0, 0, 50, 50], box_executed=Box(0, 0, 50, 50), crop=Image.new("RGB", (8, 8))),
             None]
    token_turn = torch.tensor([0, 0, -1, -1, 1, -1, 2, 2, 2, -1, -1, 3, 3])
    turns = [TurnRecord(index=k, text=t, parsed=parse_turn(t), span=(0, 0), tool=tools[k]) for k, t in enumerate(texts)]
    traj = Trajectory(task=Task(id="t", image=Image.new("RGB", (100, 100)), question="q", answer="A"),
                      sample_index=0, prompt_ids=torch.zeros(1, dtype=torch.long),
                      response_ids=torch.zeros(len(token_turn), dtype=torch.long),
                      response_mask=(token_turn >= 0).long(), token_turn=token_turn, turns=turns)
    ours = score_tool_calls([traj], Verifier(), failed_call_score=-0.6).tensors
    records = [[{"turn": 0, "score": 0.0, "ok": False}, {"turn": 1, "score": 0.0, "ok": False},
                {"turn": 2, "score": 0.25, "ok": True}]]
    verls = turn_tensors(records, traj.response_mask.unsqueeze(0), failed_call_score=-0.6)
    for key in ("turn_scores", "turn_mask", "token_turn"):
        assert torch.equal(ours[key], verls[key]), key
    assert ours["turn_scores"].tolist() == [[pytest.approx(-0.6), pytest.approx(-0.6), 0.25]]
