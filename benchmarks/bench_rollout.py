"""Rollout: the batched engine vs naive one-trajectory-at-a-time generation, and where rollout time goes:
inside the model's forward passes (the machine's limit for this model) vs everything around them (our gap to
that limit).

The split wraps the calls a rollout makes: ``model.forward``; the backend's image preprocessing
(``pixel_inputs``); the backend's stop-sequence criterion; the rest of Hugging Face's ``generate`` loop
(sampling, KV cache, logits processors); and the engine's own code (parsing, zoom tool, tokenization,
bookkeeping). The policy is the tiny random Qwen2.5-VL, expert-paced so that trajectories zoom and answer.

Batched vs naive alone (G = 8, 3 turns, 64 new tokens per turn; ``--quick`` checks the plumbing)::

    .venv/bin/python benchmarks/bench_rollout.py [--quick] [--group-size 8] [--json out.json]

The first turn of every trajectory is a scripted zoom call (a random model rarely writes one), so turns 2 and
3 are generated with the crop in context, as in a real thinking-with-images rollout. Both sides run the same
engine code on the same tasks; only the batching differs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import Figure, PhaseTimer, Skip, median, speedup_from_rates
from PIL import Image

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.data.task import Task
from mapo.models.hf_qwen import load_policy
from mapo.models.scripted import ScriptedBackend
from mapo.models.zoo import build_tiny_model, train_tokenizer

NAME = "rollout"
#: The measures ``run.py`` checks against targets.
BATCHED_VS_NAIVE = "batched engine vs naive loop"
FORWARD_RATIO = "rollout wall time / its model forward time"


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
            timer.wrap(hf_qwen._StopOnSequences, "stopped", "stop_criterion", exclusive=False)
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
            "generate loop (sampling, inputs, kept caches)": s.get("generate", 0.0) - s.get("forward", 0.0)
            - s.get("image_preprocessing", 0.0) - s.get("stop_criterion", 0.0),
            "engine (parse, zoom, tokenize, bookkeeping)": rollout - s.get("generate", 0.0),
        }
        records.append({"rollout_s": rollout, "parts_s": parts, "generated_tokens": generated,
                        "trajectories": len(trajs),
                        "forward_calls": timer.calls.get("prefill", 0) + timer.calls.get("decode", 0),
                        "prefill_calls": timer.calls.get("prefill", 0)})
    return records


def batched_vs_naive(quick: bool) -> list[Figure]:
    """:func:`measure_batched_vs_naive`'s numbers as rows."""
    threads = torch.get_num_threads()
    r = measure_batched_vs_naive(quick=quick, threads=threads)  # it sets the thread count: keep the suite's
    torch.set_num_threads(threads)
    rows = []
    for unit, key in (("traj/s", "traj"), ("gen. tokens/s", "tok")):
        batched, naive = r[f"batched_{key}_per_s"], r[f"naive_{key}_per_s"]
        rows.append(Figure(benchmark=NAME, measure=BATCHED_VS_NAIVE, unit=unit, mapo=batched,
                           reference=naive, reference_name="one trajectory at a time",
                           speedup=speedup_from_rates(batched, naive),
                           note=f"benchmarks/bench_rollout.py: {r['setting']}", extra=r))
    rows.append(Figure(benchmark=NAME, measure="KV cache kept across turns vs re-encoding each turn", unit="traj/s",
                       mapo=r["batched_traj_per_s"], reference=r["batched_nokv_traj_per_s"],
                       reference_name="batched, kv_cache=false",
                       speedup=speedup_from_rates(r["batched_traj_per_s"], r["batched_nokv_traj_per_s"]),
                       note="the batched engine of the row above with ProtocolConfig.kv_cache on / off; same tokens"))
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
    forward = median([r["parts_s"]["model forward"] for r in records])
    figures.append(Figure(benchmark=NAME, measure=FORWARD_RATIO, unit="x", mapo=rollout / forward,
                          note=f"{rollout:.2f} s of rollout / {forward:.2f} s inside model.forward (prefill + decode); "
                               "1.0 = nothing but the model's own compute", extra={"records": records}))
    for part in records[0]["parts_s"]:
        secs = median([r["parts_s"][part] for r in records])
        figures.append(Figure(benchmark=NAME, measure=f"share: {part}", unit="% of rollout",
                              mapo=100 * secs / rollout, note=f"{secs:.2f} s of {rollout:.2f} s"))
    try:
        figures.extend(batched_vs_naive(quick))
    except Skip as skip:
        figures.append(Figure(benchmark=NAME, measure=BATCHED_VS_NAIVE, unit="traj/s", mapo=None,
                              note=f"skipped: {skip}"))
    return figures


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


def measure_batched_vs_naive(quick: bool = False, group_size: int = 8, n_tasks: int = 1, max_new_tokens: int = 64,
        threads: int = 1, seed: int = 0, repeats: int = 3) -> dict:
    """Measure both sides, interleaved ``repeats`` times (batched, naive, batched without the kept KV cache, ...);
    returns the median trajectories/s and generated tokens/s of each and their ratios."""
    if quick:
        group_size, max_new_tokens, repeats = 4, 16, 1
    torch.set_num_threads(threads)
    tasks = make_tasks(n_tasks)
    texts = [ZOOM % (i, i, 400, 400) + "<answer>A</answer>" for i in range(50)]
    with tempfile.TemporaryDirectory(prefix="mapo-rollout-bench-") as tmp:
        tok = train_tokenizer(texts + [tasks[0].question], vocab_size=1024)
        policy = load_policy(build_tiny_model(Path(tmp) / "policy", tok, family="qwen2_5_vl", seed=seed))
    cfg = ProtocolConfig(max_turns=3, max_new_tokens_per_turn=max_new_tokens, temperature=1.0)
    engine = RolloutEngine(ScriptedFirstTurn(policy), None, cfg)
    plain = RolloutEngine(ScriptedFirstTurn(policy), None, cfg.model_copy(update={"kv_cache": False}))
    torch.manual_seed(seed)
    engine.run(tasks[:1], 2)  # warm-up (first-call allocations, lazy imports)
    plain.run(tasks[:1], 2)

    def generated(trajs) -> int:
        return sum(int(t.response_mask[t.token_turn >= 1].sum()) for t in trajs)  # model-written tokens only

    sides = {
        "batched": lambda: engine.run(tasks, group_size),
        "naive": lambda: [t for task in tasks for _ in range(group_size) for t in engine.run([task], 1)],
        "batched_nokv": lambda: plain.run(tasks, group_size),
    }
    runs: dict[str, list[tuple[float, list]]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            torch.manual_seed(seed)
            runs[name].append(timed(fn))
    result = {
        "setting": f"{n_tasks} prompt(s) x G={group_size}, 3 turns, <= {max_new_tokens} new tokens per turn, "
                   f"tiny Qwen2.5-VL (random init, vocab {len(tok)}), torch threads {threads}, "
                   f"medians of {repeats} interleaved runs",
    }
    for name, rs in runs.items():
        secs = median([s for s, _ in rs])
        trajs = rs[0][1]
        result[f"{name}_s"] = secs
        result[f"{name}_all_s"] = [s for s, _ in rs]
        result[f"{name}_traj_per_s"] = len(trajs) / secs
        result[f"{name}_tok_per_s"] = generated(trajs) / secs
        result[f"{name}_generated_tokens"] = generated(trajs)
    result["traj_ratio"] = result["batched_traj_per_s"] / result["naive_traj_per_s"]
    result["tok_ratio"] = result["batched_tok_per_s"] / result["naive_tok_per_s"]
    result["kv_ratio"] = result["batched_traj_per_s"] / result["batched_nokv_traj_per_s"]
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="Rollout: the batched engine vs one trajectory at a time, side by side.")
    p.add_argument("--quick", action="store_true", help="G=4, 16 new tokens per turn")
    p.add_argument("--group-size", type=int, default=8, help="G: samples per prompt")
    p.add_argument("--tasks", type=int, default=1, help="number of prompts")
    p.add_argument("--max-new-tokens", type=int, default=64, help="generation limit per turn")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest for tiny "
                   "models on a shared machine)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs per side (medians reported)")
    p.add_argument("--json", type=Path, help="also write the result here")
    a = p.parse_args(argv)
    r = measure_batched_vs_naive(a.quick, a.group_size, a.tasks, a.max_new_tokens, a.threads, repeats=a.repeats)
    print(r["setting"])
    print(f"{'':10s} {'traj/s':>8s} {'tok/s':>8s} {'seconds':>8s}")
    for side in ("batched", "naive", "batched_nokv"):
        print(f"{side:10s} {r[side + '_traj_per_s']:8.2f} {r[side + '_tok_per_s']:8.0f} {r[side + '_s']:8.2f}")
    print(f"ratio batched/naive: {r['traj_ratio']:.2f}x trajectories/s, {r['tok_ratio']:.2f}x tokens/s; "
          f"kept KV cache vs re-encoding: {r['kv_ratio']:.2f}x")
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    main()
