"""How much the demo's steps gain from a second torch thread, on a finished demo's own model and data: SFT
steps, RL steps (rollout and update apart) and a greedy val evaluation, with 1 and 2 threads interleaved (1, 2,
1, 2, ...) in one process, so the machine's drift hits both alike. Run it alone: two threads against another
busy process measure the contention, not the model (benchmarks/README.md, "Threads").

    python scripts/demo_threads.py runs/demo [--sft-steps 4] [--rl-steps 3]

It writes nothing into the demo's folders (the RL steps run in a temporary directory).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mapo.data.parquet import load_tasks
from mapo.models import hf_qwen
from mapo.train.config import SFTConfig, TrainConfig, load_config
from mapo.train.rl import RLTrainer
from mapo.train.sft import expert_rollouts, nll_loss

THREADS = (1, 2)


def sft_steps(root: Path, steps: int) -> dict[int, list[float]]:
    """Seconds of one SFT optimizer step (forward, backward, AdamW) on the demo's batch size, per thread count."""
    cfg = load_config(SFTConfig, root / "sft" / "config.yaml")
    backend = hf_qwen.load_policy(root / "model", master_weights=True)
    size = cfg.micro_batch_size
    tasks = load_tasks(cfg.train, limit=size * steps)
    trajs, _ = expert_rollouts(tasks, backend, cfg.protocol, cfg.expert, seed=cfg.seed, progress=False)
    optimizer = torch.optim.AdamW(backend.model.parameters(), lr=1e-5)
    backend.model.train()
    times: dict[int, list[float]] = {n: [] for n in THREADS}
    for k in range(steps):
        micro = trajs[size * k:size * (k + 1)]
        for n in THREADS:
            torch.set_num_threads(n)
            start = time.perf_counter()
            logprobs, _ = backend.sequence_logprobs(micro, temperature=1.0)
            mask = torch.nn.utils.rnn.pad_sequence([t.response_mask for t in micro], batch_first=True)
            nll, tokens = nll_loss(logprobs, mask)
            (nll / tokens).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times[n].append(time.perf_counter() - start)
    return times


def rl_steps(root: Path, steps: int) -> dict[str, dict[int, list[float]]]:
    """Seconds of RL steps (whole, rollout, update) and of one greedy val evaluation, per thread count."""
    cfg = load_config(TrainConfig, root / "rl" / "config.yaml").model_copy(deep=True)
    out: dict[str, dict[int, list[float]]] = {k: {n: [] for n in THREADS} for k in ("step", "rollout", "update",
                                                                                    "val evaluation")}
    with tempfile.TemporaryDirectory(prefix="mapo-demo-threads-") as tmp:
        cfg.run.out_dir = tmp
        trainer = RLTrainer(cfg)
        for _ in range(steps):
            for n in THREADS:
                torch.set_num_threads(n)
                start = time.perf_counter()
                m = trainer.train_step()
                out["step"][n].append(time.perf_counter() - start)
                out["rollout"][n].append(m["rollout_s"])
                out["update"][n].append(m.get("update_s", float("nan")))
        for n in THREADS:
            torch.set_num_threads(n)
            start = time.perf_counter()
            trainer.evaluate(temperature=0.0)
            out["val evaluation"][n].append(time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("demo", type=Path, help="a finished demo's out_dir (runs/demo)")
    p.add_argument("--sft-steps", type=int, default=4)
    p.add_argument("--rl-steps", type=int, default=3)
    a = p.parse_args()
    rows = {"SFT step": sft_steps(a.demo, a.sft_steps), **rl_steps(a.demo, a.rl_steps)}
    print(f"{'':16s} {'1 thread s':>11s} {'2 threads s':>12s} {'speed-up':>9s}   (medians)")
    for name, times in rows.items():
        one, two = statistics.median(times[1]), statistics.median(times[2])
        print(f"{name:16s} {one:11.2f} {two:12.2f} {one / two:8.2f}x")


if __name__ == "__main__":
    main()
