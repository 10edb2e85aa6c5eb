"""Carried per-call records -> mapo.core's turn tensors."""

from __future__ import annotations

import pytest
import torch

from mapo.core.semantic import pad_turn_scores
from mapo.integrations.verl.turns import assistant_turn_of_tokens, calls_per_turn, turn_tensors


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
    assert calls_per_turn([{"turn": 0, "score": 0.2, "ok": True}, {"turn": 0, "score": 0.4, "ok": True},
                           {"turn": 2, "score": 0.1, "ok": True}]) == pytest.approx({0: 0.3, 2: 0.1})


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
