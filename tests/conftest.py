"""Fixtures shared across test folders."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread. Tiny models are dominated by per-op overhead; on a shared 2-core
    machine two threads spin against other processes and run ~50x slower than one. Folders that load tiny
    models request it for every test (an autouse fixture in their conftest); the benchmark and thread tests
    do not, so they keep the machine's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
