"""Shared builders for the verl integration tests: verl-shaped multi-turn batches with known turn structure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

try:
    import verl  # noqa: F401
except ImportError:  # the verl extra is not installed: these tests are about verl, collect none of them
    collect_ignore_glob = ["test_*.py"]


@dataclass
class MultiTurnBatch:
    """A batch as verl's agent loop produces it, plus the ground truth mapo.core expects."""

    token_level_rewards: torch.Tensor  # [B, L] reward on the last generated token
    response_mask: torch.Tensor        # [B, L] 1 on generated tokens, 0 on observations and padding
    uid: np.ndarray                    # [B] group ids (object array of str, as verl's uid)
    records: list[list[dict]]          # per row: carried {"turn", "score", "ok", "box"} records
    scores: list[list[float]]          # per row: the score of each tool call as mapo.core sees it
    token_turn: torch.Tensor           # [B, L] tool-call index per token (T_i for answer, -1 elsewhere)


def build_batch(seed: int, groups: int = 3, group_size: int = 4, max_calls: int = 3, length: int = 96,
                failed_call_score: float = -1.0, fail_prob: float = 0.2) -> MultiTurnBatch:
    """Trajectories of 0..max_calls zoom turns then an answer turn; some calls fail (no crop)."""
    rng = np.random.default_rng(seed)
    batch = groups * group_size
    rewards = torch.zeros(batch, length)
    mask = torch.zeros(batch, length)
    token_turn = torch.full((batch, length), -1, dtype=torch.long)
    records, scores = [], []
    for i in range(batch):
        n_calls = int(rng.integers(0, max_calls + 1))
        pos, recs, row_scores = 0, [], []
        for turn in range(n_calls + 1):
            gen = int(rng.integers(2, 8))
            mask[i, pos:pos + gen] = 1
            token_turn[i, pos:pos + gen] = turn  # call index == turn here: every turn but the last calls
            pos += gen
            if turn < n_calls:
                ok = bool(rng.random() > fail_prob)
                score = float(rng.uniform(-0.2, 0.6))
                recs.append({"turn": turn, "score": score if ok else 0.0, "ok": ok,
                             "box": [0, 0, 28, 28] if ok else None})
                row_scores.append(score if ok else failed_call_score)
                pos += int(rng.integers(3, 9))  # the observation (loss-masked)
        rewards[i, pos - 1] = float(rng.integers(0, 2))
        records.append(recs)
        scores.append(row_scores)
    uid = np.array([f"prompt-{i // group_size}" for i in range(batch)], dtype=object)
    return MultiTurnBatch(rewards, mask, uid, records, scores, token_turn)


@pytest.fixture
def multi_turn_batch():
    return build_batch
