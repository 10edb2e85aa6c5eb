"""Why the batched engine is not 8x the one-trajectory-at-a-time loop: the cost of a decode step at batch G vs
batch 1 inside the rollout (phase timers), and the ops a batched rollout spends its time in (torch profiler).

    .venv/bin/python benchmarks/profile_rollout.py [--group-size 8] [--top 12]

Same setting as ``bench_rollout.measure_batched_vs_naive`` (tiny random Qwen2.5-VL, turn 0 a scripted zoom,
then 2 model turns of <= 64 tokens, one torch thread). Prints, per side, the forward calls split into prefill
and decode with their time per call, then the top ops of one batched rollout by self CPU time, then an isolated
decode forward at batch 1 and batch G over a ``--context``-token cache with rows padded differently, with
Hugging Face's ``DynamicCache`` and repeated KV heads vs mapo's ``InPlaceCache`` and ``native_gqa``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
from bench_rollout import ZOOM, ScriptedFirstTurn, _forward_kind, make_tasks
from harness import PhaseTimer

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.models.hf_qwen import load_policy
from mapo.models.zoo import build_tiny_model, train_tokenizer


def decode_step_ms(model, batch: int, context: int, padded: bool, cache: str, steps: int = 40) -> float:
    """Median time of one decode forward of ``batch`` rows after a ``context``-token prefill (row i left-padded by
    3i tokens when ``padded``); ``cache``: ``dynamic`` (Hugging Face's), ``inplace``, or ``inplace+gqa``."""
    from transformers import DynamicCache

    from mapo.models.gqa_attention import native_gqa
    from mapo.models.inplace_cache import InPlaceCache

    ids = torch.randint(10, 300, (batch, context))
    mask = torch.ones(batch, context, dtype=torch.long)
    if padded:
        for i in range(batch):
            mask[i, :3 * i] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    kv = DynamicCache(config=model.config) if cache == "dynamic" else \
        InPlaceCache.for_model(model.config, capacity=context + steps)
    times = []
    with torch.no_grad(), native_gqa() if cache == "inplace+gqa" else contextlib.nullcontext():
        model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=kv, use_cache=True,
              logits_to_keep=1)
        for s in range(steps):
            mask = torch.cat([mask, torch.ones(batch, 1, dtype=torch.long)], 1)
            start = time.perf_counter()
            model(input_ids=ids[:, -1:], attention_mask=mask, position_ids=pos[:, -1:] + s + 1, past_key_values=kv,
                  use_cache=True)
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group-size", type=int, default=8, help="G: samples of the one prompt")
    p.add_argument("--top", type=int, default=12, help="ops listed from the torch profiler")
    p.add_argument("--context", type=int, default=800, help="cached tokens of the isolated decode forward")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    tasks = make_tasks(1)
    texts = [ZOOM % (i, i, 400, 400) + "<answer>A</answer>" for i in range(50)]
    with tempfile.TemporaryDirectory(prefix="mapo-profile-rollout-") as tmp:
        tok = train_tokenizer(texts + [tasks[0].question], vocab_size=1024)
        policy = load_policy(build_tiny_model(Path(tmp) / "policy", tok, family="qwen2_5_vl", seed=0))
    engine = RolloutEngine(ScriptedFirstTurn(policy), None,
                           ProtocolConfig(max_turns=3, max_new_tokens_per_turn=64, temperature=1.0))
    engine.run(tasks, 2)  # warm-up
    G = a.group_size
    sides = {"batched": lambda: engine.run(tasks, G), "naive": lambda: [engine.run(tasks, 1) for _ in range(G)]}
    for name, fn in sides.items():
        torch.manual_seed(0)
        with PhaseTimer() as t:
            t.wrap(policy.model, "forward", _forward_kind, exclusive=False)
            start = time.perf_counter()
            fn()
            total = time.perf_counter() - start
        parts = ", ".join(f"{k} {t.calls[k]} calls {1000 * v / t.calls[k]:.1f} ms/call" for k, v in t.seconds.items())
        print(f"{name:8s} {total:6.2f} s: {parts}")
    from torch.profiler import profile

    with profile() as prof:
        engine.run(tasks, G)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.top))
    model = policy.model.eval()
    print(f"isolated decode forward over {a.context} cached tokens (median ms):")
    print(f"  batch 1: {decode_step_ms(model, 1, a.context, False, 'dynamic'):.2f}")
    print(f"  batch {G}, no padding, DynamicCache: {decode_step_ms(model, G, a.context, False, 'dynamic'):.2f}")
    for cache in ("dynamic", "inplace", "inplace+gqa"):
        print(f"  batch {G}, padded rows, {cache}: {decode_step_ms(model, G, a.context, True, cache):.2f}")


if __name__ == "__main__":
    main()
