"""verl 0.9.1's equal-length M-RoPE padding bug, pinned (docs/verl.md, "M-RoPE padding crash").

``verl.workers.utils.padding.left_right_2_no_padding`` packs Qwen-VL's (4, L_i) position rows with
``torch.nested.as_nested_tensor(..., layout=torch.jagged)``. When every row of a micro-batch has the same
length, torch takes the constant 4 as the ragged dimension: the position ids' offsets become [0, 4, 8, ...]
instead of the sequences' [0, L, 2L, ...], and ``update_actor`` later fails in ``split_with_sizes``. mapo's CPU
runs avoid it with prompts of different lengths in every micro-batch. When this test fails, verl fixed it.
"""

from __future__ import annotations

import pytest
import torch

tensordict = pytest.importorskip("tensordict")


def _batch(lengths: list[int], width: int = 8):
    """Left-padded rows of the given lengths, with M-RoPE position ids of shape (B, 4, width)."""
    rows = len(lengths)
    mask = torch.zeros(rows, width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, width - n:] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)[:, None, :].expand(rows, 4, width).contiguous()
    return tensordict.TensorDict({"input_ids": torch.ones(rows, width, dtype=torch.long), "attention_mask": mask,
                                  "response_mask": mask[:, -3:], "position_ids": positions}, batch_size=[rows])


def test_rows_of_different_lengths_pack_consistently():
    from verl.workers.utils.padding import left_right_2_no_padding

    out = left_right_2_no_padding(_batch([5, 7]))
    assert out["input_ids"].offsets().tolist() == [0, 5, 12]
    assert out["position_ids"].offsets().tolist() == [0, 5, 12]


def test_rows_of_equal_length_get_the_wrong_ragged_dimension():
    from verl.workers.utils.padding import left_right_2_no_padding

    out = left_right_2_no_padding(_batch([6, 6]))
    assert out["input_ids"].offsets().tolist() == [0, 6, 12]
    # the bug: offsets of the constant M-RoPE axis (4), not of the sequences
    assert out["position_ids"].offsets().tolist() == [0, 4, 8], (
        "verl now packs equal-length M-RoPE rows correctly: drop the different-prompt-length workaround "
        "(docs/verl.md, configs/verl/cpu_smoke.yaml) and this test")
