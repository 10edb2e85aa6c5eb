"""Rollout: the batched engine vs naive one-trajectory-at-a-time generation (the agent engineer's
``benchmarks/rollout_bench.py``), and where rollout time goes: inside the model's forward passes (the machine's
limit for this model) vs everything around them (our gap to that limit).

The split wraps the calls a rollout makes: ``model.forward``; the backend's image preprocessing
(``pixel_inputs``); the backend's stop-sequence criterion; the rest of Hugging Face's ``generate`` loop
(sampling, KV cache, logits processors); and the engine's own code (parsing, zoom tool, tokenization,
bookkeeping). The policy is the tiny random Qwen2.5-VL, expert-paced so that trajectories zoom and answer.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path

from harness import Figure, PhaseTimer, Skip, median, speedup_from_rates

NAME = "rollout"


def _forward_kind(*args, **kwargs) -> str:
    """``prefill`` for a forward over more than one new token (the prompt and its images), else ``decode``."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    return "prefill" if ids is not None and ids.shape[-1] > 1 else "decode"


def _vision_tower(model):
    """The vision encoder module of a Qwen-VL model (``model.model.visual`` in transformers 5), if found."""
    for path in (("model", "visual"), ("visual",)):
        obj = model
        for name in path:
            obj = getattr(obj, name, None)
        if obj is not None:
            return obj
    return None


def rollout_split(engine, paced, tasks, group_size: int, repeats: int) -> list[dict]:
    """Run ``engine.run(tasks, group_size)`` ``repeats`` times with phase timers; one record per run."""
    from mapo.models import hf_qwen

    inner = paced.inner
    records = []
    for _ in range(repeats):
        with PhaseTimer() as timer:
            timer.wrap(inner.model, "forward", _forward_kind, exclusive=False)
            visual = _vision_tower(inner.model)
            if visual is not None:
                timer.wrap(visual, "forward", "vision", exclusive=False)
            timer.wrap(inner, "pixel_inputs", "image_preprocessing", exclusive=False)
            timer.wrap(hf_qwen._StopOnSequences, "__call__", "stop_criterion", exclusive=False)
            timer.wrap(inner, "generate", "generate", exclusive=False)
            timer.wrap(paced.scripted, "generate", "pacing", exclusive=False)
            start = time.perf_counter()
            trajs = engine.run(tasks, group_size)
            total = time.perf_counter() - start
        s = dict(timer.seconds)
        generated = sum(int(sum(t.response_mask)) for t in trajs)
        # the pacing wrapper is benchmark scaffolding, not part of a real rollout
        rollout = total - s.get("pacing", 0.0)
        forward = s.get("prefill", 0.0) + s.get("decode", 0.0)
        s["forward"] = forward
        parts = {
            "model forward": forward,
            "model forward: prefill (prompt + images, each turn)": s.get("prefill", 0.0),
            "model forward: vision tower (inside prefill)": s.get("vision", 0.0),
            "image preprocessing": s.get("image_preprocessing", 0.0),
            "stop-sequence check": s.get("stop_criterion", 0.0),
            "HF generate loop (sampling, cache)": s.get("generate", 0.0) - s.get("forward", 0.0)
            - s.get("image_preprocessing", 0.0) - s.get("stop_criterion", 0.0),
            "engine (parse, zoom, tokenize, bookkeeping)": rollout - s.get("generate", 0.0),
        }
        records.append({"rollout_s": rollout, "parts_s": parts, "generated_tokens": generated,
                        "trajectories": len(trajs),
                        "forward_calls": timer.calls.get("prefill", 0) + timer.calls.get("decode", 0),
                        "prefill_calls": timer.calls.get("prefill", 0)})
    return records


def batched_vs_naive(quick: bool) -> list[Figure]:
    """The agent engineer's benchmark (``benchmarks/rollout_bench.py``); its numbers become rows here."""
    import torch

    try:
        module = importlib.import_module("rollout_bench")
    except ImportError as exc:
        raise Skip(f"benchmarks/rollout_bench.py is not importable ({exc})") from exc
    threads = torch.get_num_threads()
    r = module.run(quick=quick, threads=threads)  # it sets the thread count: keep the suite's
    torch.set_num_threads(threads)
    rows = []
    for unit, key in (("traj/s", "traj"), ("gen. tokens/s", "tok")):
        batched, naive = r[f"batched_{key}_per_s"], r[f"naive_{key}_per_s"]
        rows.append(Figure(benchmark=NAME, measure="batched engine vs naive loop", unit=unit, mapo=batched,
                           reference=naive, reference_name="one trajectory at a time",
                           speedup=speedup_from_rates(batched, naive),
                           note=f"benchmarks/rollout_bench.py: {r['setting']}", extra=r))
    return rows


def run(quick: bool = False) -> list[Figure]:
    import tiny_setup

    from mapo.agent.protocol import ProtocolConfig
    from mapo.agent.rollout import RolloutEngine
    from mapo.models.hf_qwen import load_policy

    n_tasks, group_size, repeats = (1, 2, 1) if quick else (2, 8, 3)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mapo-bench-rollout-") as tmp:
        setup = tiny_setup.build(Path(tmp), n_tasks=max(n_tasks, 2), family="qwen2_5_vl")
        paced = tiny_setup.expert_paced(load_policy(setup.model_dir), setup.tasks)
        engine = RolloutEngine(paced, None, ProtocolConfig(max_turns=3, max_new_tokens_per_turn=128))
        tasks = setup.tasks[:n_tasks]
        engine.run(tasks, group_size)  # warm-up
        records = rollout_split(engine, paced, tasks, group_size, repeats)
    rollout = median([r["rollout_s"] for r in records])
    tokens = records[0]["generated_tokens"]
    setting = (f"{n_tasks} prompts x G={group_size}, <= 3 turns, {tokens} generated tokens, "
               f"{records[0]['forward_calls']} forward calls, tiny Qwen2.5-VL")
    figures.append(Figure(benchmark=NAME, measure="rollout throughput", unit="tokens/s", mapo=tokens / rollout,
                          note=setting, extra={"records": records}))
    for part in records[0]["parts_s"]:
        secs = median([r["parts_s"][part] for r in records])
        figures.append(Figure(benchmark=NAME, measure=f"share: {part}", unit="% of rollout",
                              mapo=100 * secs / rollout, note=f"{secs:.2f} s of {rollout:.2f} s"))
    try:
        figures.extend(batched_vs_naive(quick))
    except Skip as skip:
        figures.append(Figure(benchmark=NAME, measure="batched engine vs naive loop", unit="traj/s", mapo=None,
                              note=f"skipped: {skip}"))
    return figures
