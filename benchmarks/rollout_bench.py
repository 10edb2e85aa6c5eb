"""Rollout throughput: the batched engine (one ``generate`` per turn over all active trajectories) vs a naive
loop that rolls out one trajectory at a time, side by side in one run, on the tiny random Qwen2.5-VL.

    .venv/bin/python benchmarks/rollout_bench.py            # G = 8, 3 turns, 64 new tokens per turn
    .venv/bin/python benchmarks/rollout_bench.py --quick    # smaller, checks the plumbing

The first turn of every trajectory is a scripted zoom call (a random model rarely writes one), so turns 2 and
3 are generated with the crop in context, as in a real thinking-with-images rollout. Both sides run the same
engine code on the same tasks; only the batching differs. Prints trajectories/s, generated tokens/s and the
batched/naive ratio; ``run()`` returns them as a dict (used by ``benchmarks/run.py``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.data.task import Task
from mapo.models.hf_qwen import load_policy
from mapo.models.scripted import ScriptedBackend
from mapo.models.zoo import build_tiny_model, train_tokenizer

ZOOM = ('<think>The object is too small; zoom in.</think>\n<tool_call>{"name": "image_zoom_in_tool", '
        '"arguments": {"bbox_2d": [%d, %d, %d, %d], "label": "a small red circle"}}</tool_call>')


class ScriptedFirstTurn:
    """The model's backend, except that turn 0 replays a zoom call."""

    def __init__(self, real):
        self.real = real
        self.scripted = ScriptedBackend(like=real, script=lambda ctx: ZOOM % (100, 100, 500, 400))

    def generate(self, contexts, max_new_tokens, stop, temperature=1.0):
        inner = self.scripted if contexts[0].turn == 0 else self.real
        return inner.generate(contexts, max_new_tokens, stop, temperature)

    def __getattr__(self, name):
        return getattr(self.real, name)


def make_tasks(n: int) -> list[Task]:
    rng = np.random.default_rng(0)
    return [Task(id=f"bench-{i}", image=Image.fromarray(rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8)),
                 question="What colour is the small circle?", answer="A", options=["red", "green", "blue"])
            for i in range(n)]


def timed(fn) -> tuple[float, list]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(quick: bool = False, group_size: int = 8, n_tasks: int = 1, max_new_tokens: int = 64,
        threads: int = 1, seed: int = 0) -> dict:
    """Measure both sides; returns trajectories/s and generated tokens/s of each and their ratios."""
    if quick:
        group_size, max_new_tokens = 4, 16
    torch.set_num_threads(threads)
    tasks = make_tasks(n_tasks)
    texts = [ZOOM % (i, i, 400, 400) + "<answer>A</answer>" for i in range(50)]
    with tempfile.TemporaryDirectory(prefix="mapo-rollout-bench-") as tmp:
        tok = train_tokenizer(texts + [tasks[0].question], vocab_size=1024)
        policy = load_policy(build_tiny_model(Path(tmp) / "policy", tok, family="qwen2_5_vl", seed=seed))
    cfg = ProtocolConfig(max_turns=3, max_new_tokens_per_turn=max_new_tokens, temperature=1.0)
    engine = RolloutEngine(ScriptedFirstTurn(policy), None, cfg)
    torch.manual_seed(seed)
    engine.run(tasks[:1], 2)  # warm-up (first-call allocations, lazy imports)

    def generated(trajs) -> int:
        return sum(int(t.response_mask[t.token_turn >= 1].sum()) for t in trajs)  # model-written tokens only

    torch.manual_seed(seed)
    batched_s, batched = timed(lambda: engine.run(tasks, group_size))
    torch.manual_seed(seed)
    naive_s, naive = timed(lambda: [t for task in tasks for _ in range(group_size) for t in engine.run([task], 1)])
    n = len(batched)
    result = {
        "setting": f"{n_tasks} prompt(s) x G={group_size}, 3 turns, <= {max_new_tokens} new tokens per turn, "
                   f"tiny Qwen2.5-VL (random init, vocab {len(tok)}), torch threads {threads}",
        "batched_traj_per_s": n / batched_s, "naive_traj_per_s": len(naive) / naive_s,
        "batched_tok_per_s": generated(batched) / batched_s, "naive_tok_per_s": generated(naive) / naive_s,
        "batched_s": batched_s, "naive_s": naive_s,
        "batched_generated_tokens": generated(batched), "naive_generated_tokens": generated(naive),
    }
    result["traj_ratio"] = result["batched_traj_per_s"] / result["naive_traj_per_s"]
    result["tok_ratio"] = result["batched_tok_per_s"] / result["naive_tok_per_s"]
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="G=4, 16 new tokens per turn")
    p.add_argument("--group-size", type=int, default=8, help="G: samples per prompt")
    p.add_argument("--tasks", type=int, default=1, help="number of prompts")
    p.add_argument("--max-new-tokens", type=int, default=64, help="generation limit per turn")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest for tiny "
                   "models on a shared machine)")
    p.add_argument("--json", type=Path, help="also write the result here")
    a = p.parse_args(argv)
    r = run(a.quick, a.group_size, a.tasks, a.max_new_tokens, a.threads)
    print(r["setting"])
    print(f"{'':10s} {'traj/s':>8s} {'tok/s':>8s} {'seconds':>8s}")
    for side in ("batched", "naive"):
        print(f"{side:10s} {r[side + '_traj_per_s']:8.2f} {r[side + '_tok_per_s']:8.0f} {r[side + '_s']:8.2f}")
    print(f"ratio batched/naive: {r['traj_ratio']:.2f}x trajectories/s, {r['tok_ratio']:.2f}x tokens/s")
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    main()
