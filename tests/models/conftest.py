"""Shared fixtures of the model-zoo tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Tiny models are dominated by per-op overhead; on a shared 2-core machine two threads spin against
    # other processes and run ~50x slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
