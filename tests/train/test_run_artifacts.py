"""Issue #19.7: run artifacts survive kills — final/ appears whole or not at all, killed checkpoint writes do
not leave folders forever, and a torn last line of metrics.jsonl does not stop --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mapo.train.checkpoint import checkpoint_dirs, save_checkpoint, write_atomically
from mapo.train.metrics_log import MetricsLogger, read_metrics


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_final(weights: str, protocol: str | None):
    def write(d):
        (d / "model.safetensors").write_text(weights)
        if protocol is None:
            raise KeyboardInterrupt  # killed between the weights and protocol.yaml
        (d / "protocol.yaml").write_text(protocol)
    return write


def test_final_is_written_whole_or_not_at_all(tmp_path):
    final = tmp_path / "final"
    with pytest.raises(KeyboardInterrupt):
        write_atomically(final, _write_final("w1", None))
    assert not final.exists()  # no final/ without its protocol.yaml (mapo eval would use the defaults)
    write_atomically(final, _write_final("w1", "max_turns: 3\n"))
    with pytest.raises(KeyboardInterrupt):
        write_atomically(final, _write_final("w2", None))
    assert (final / "model.safetensors").read_text() == "w1" and (final / "protocol.yaml").is_file()
    write_atomically(final, _write_final("w2", "max_turns: 4\n"))
    assert (final / "protocol.yaml").read_text() == "max_turns: 4\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_the_trainers_write_final_through_the_atomic_writer():
    import inspect

    from mapo.train import rl, sft

    for module in (rl, sft):
        assert "write_atomically(final" in inspect.getsource(module), module.__name__


def test_killed_checkpoint_writes_are_cleaned_up(tmp_path):
    root = tmp_path / "checkpoints"
    pid = _dead_pid()
    for name in (f".tmp-step_00000003-{pid}", f".old-step_00000002-{pid}", f".tmp-final-{pid}"):
        (root / name / "model").mkdir(parents=True)
    live = root / f".tmp-step_00000009-{os.getpid()}"  # a live writer's folder is left alone
    live.mkdir()
    save_checkpoint(root, 4, save_model=lambda d: d.mkdir())
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted(["step_00000004", live.name])
    assert [p.name for p in checkpoint_dirs(root)] == ["step_00000004"]


def test_a_torn_last_metrics_line_does_not_stop_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "reward": s / 10}) + "\n" for s in (1, 2, 3)) + '{"step": 4, "rew')
    with MetricsLogger(tmp_path, total_steps=6, start_step=2, progress=False, tensorboard=False) as log:
        log.log(3, {"reward": 0.9})
    assert [(r["step"], r["reward"]) for r in read_metrics(tmp_path)] == [(1, 0.1), (2, 0.2), (3, 0.9)]
    path.write_text(path.read_text() + '{"step": 4, "re')
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]  # readers skip the torn line too
