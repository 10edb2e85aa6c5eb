"""Threads: the same mapo RL step with 1 torch intra-op thread vs all usable CPUs, interleaved.

On a machine that other processes keep busy, OpenMP threads spin waiting for cores they cannot get, and a
tiny model's step gets *slower* with more threads. This measures that effect where the suite runs, so the
other figures (run with the suite's ``--threads``) can be read, and users know which setting to pick.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from harness import Figure, Skip, cpu_count, median, speedup_from_rates

NAME = "threads"


def run(quick: bool = False) -> list[Figure]:
    import os

    import tiny_setup
    import torch
    from bench_rl_step import StepSize, mapo_trainer

    many = cpu_count()
    if many < 2:
        raise Skip("one usable CPU: nothing to compare")
    size = StepSize(prompts=1, group_size=2, max_new_tokens=8, steps=1) if quick else \
        StepSize(prompts=2, group_size=4, max_new_tokens=64, steps=3)
    before = torch.get_num_threads()
    load = os.getloadavg()[0]
    times: dict[int, list[float]] = {1: [], many: []}
    try:
        with tempfile.TemporaryDirectory(prefix="mapo-bench-threads-") as tmp:
            setup = tiny_setup.build(Path(tmp), n_tasks=8, family="qwen2_vl")
            trainer = mapo_trainer(setup, Path(tmp) / "run", size)
            trainer.train_step()  # warm-up
            for _ in range(size.steps):
                for n in (1, many):
                    torch.set_num_threads(n)
                    start = time.perf_counter()
                    trainer.train_step()
                    times[n].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    one, all_ = size.samples / median(times[1]), size.samples / median(times[many])
    return [Figure(benchmark=NAME, measure="RL step with 1 torch thread", unit="samples/s", mapo=one,
                   reference=all_, reference_name=f"{many} threads", speedup=speedup_from_rates(one, all_),
                   note=f"single-turn GRPO step, P={size.prompts} x G={size.group_size}, <= {size.max_new_tokens} "
                        f"tokens, tiny Qwen2-VL; load average {load:.1f} on {many} CPUs",
                   extra={"seconds": {str(k): v for k, v in times.items()}})]
