"""Where one MAPO RL step (the trainer's defaults: one group per micro-batch, gradient-variance probe on)
spends its time and memory: rollout / scoring (rewards, verifier) / advantages /
log-probs (the training forward) / backward / optimizer, and the peak resident memory of each phase.

The step is ``mapo.train.rl.RLTrainer.train_step`` unchanged; the phases are measured by wrapping the calls it
makes through its public collaborators (the rollout engine, the reward function, the verifier, the advantage
function, the backend's ``sequence_logprobs``, ``Tensor.backward``, the optimizer). The policy is the tiny random
Qwen2.5-VL, expert-paced (``tiny_setup.expert_paced``) so that every trajectory zooms, gets crops scored by the
verifier and answers, as a trained policy would.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from harness import Figure, PhaseTimer, median, peak_rss_mib, reset_peak_rss

NAME = "step_breakdown"
#: memory is measured: run in a fresh interpreter, not one that earlier benchmarks have grown
ISOLATED = True

#: phase -> what it covers, in table order
PHASES = {
    "rollout": "RolloutEngine.run: batched generation, parsing, zoom tool, bookkeeping",
    "rewards": "outcome reward of every trajectory",
    "verifier": "verifier.score on every (label, crop) pair",
    "advantages": "the estimator (mapo)",
    "logprobs": "backend.sequence_logprobs: the training forward",
    "backward": "loss.backward",
    "optimizer": "AdamW step",
    "grad_variance": "gradient-variance probe (projections of each micro-batch's gradient)",
}


def measure(trainer, steps: int) -> list[dict]:
    """Run ``steps`` training steps of ``trainer`` with phase timers; one record per step."""
    import torch

    records = []
    for _ in range(steps):
        with PhaseTimer() as timer:
            timer.wrap(trainer.engine, "run", "rollout")
            timer.wrap(trainer, "reward_fn", "rewards")
            timer.wrap(trainer.verifier, "score", "verifier")
            timer.wrap(trainer, "advantage_fn", "advantages")
            timer.wrap(trainer.backend, "sequence_logprobs", "logprobs")
            timer.wrap(torch.Tensor, "backward", "backward")
            timer.wrap(trainer.optimizer, "step", "optimizer")
            if trainer.projector is not None:
                timer.wrap(trainer.projector, "project", "grad_variance")
            reset_peak_rss()
            start = time.perf_counter()
            metrics = trainer.train_step()
            total = time.perf_counter() - start
            # phases reset the peak counter on entry: the step's peak is the largest phase's or the tail's
            step_peak = max([peak_rss_mib(), *timer.peak_mib.values()])
        records.append({"total_s": total, "seconds": dict(timer.seconds), "calls": dict(timer.calls),
                        "peak_mib": dict(timer.peak_mib), "growth_mib": dict(timer.growth_mib),
                        "step_peak_mib": step_peak, "metrics": metrics})
    return records


def run(quick: bool = False) -> list[Figure]:
    import tiny_setup
    from bench_rl_step import StepSize, mapo_trainer

    size = StepSize(prompts=1, group_size=2, max_new_tokens=128, steps=1) if quick else \
        StepSize(prompts=2, group_size=8, max_new_tokens=128, steps=3)
    with tempfile.TemporaryDirectory(prefix="mapo-bench-step-") as tmp:
        work = Path(tmp)
        setup = tiny_setup.build(work, n_tasks=8, family="qwen2_5_vl")
        trainer = mapo_trainer(setup, work / "run", size, estimator="mapo", max_turns=3, paced=True,
                               like_trl=False)
        # the first step grows the process to its working size (RSS rarely shrinks afterwards), so memory is
        # read from it; times from the steps after it
        first = measure(trainer, 1)[0]
        records = measure(trainer, size.steps)

    total = median([r["total_s"] for r in records])
    m = records[len(records) // 2]["metrics"]
    setting = (f"P={size.prompts} x G={size.group_size}, mean {m.get('turns', float('nan')):.1f} turns, "
               f"{m.get('calls_per_traj', float('nan')):.1f} zooms/traj, tiny Qwen2.5-VL, estimator mapo")
    figures = [Figure(benchmark=NAME, measure="whole step", unit="s", mapo=total, note=setting,
                      extra={"records": records, "first_step": first})]
    for phase, what in PHASES.items():
        secs = median([r["seconds"].get(phase, 0.0) for r in records])
        growth = first["growth_mib"].get(phase, 0.0)
        figures.append(Figure(benchmark=NAME, measure=f"{phase} share", unit="% of step", mapo=100 * secs / total,
                              note=f"{secs:.2f} s; RSS +{growth:.0f} MiB in the first step; {what}"))
    # per step, then the median: medians of the parts need not add up to the median of the whole
    other = median([max(0.0, r["total_s"] - sum(r["seconds"].get(p, 0.0) for p in PHASES)) / r["total_s"]
                    for r in records])
    figures.append(Figure(benchmark=NAME, measure="other share", unit="% of step", mapo=100 * other,
                          note="batching, collation outside the phases above, metrics"))
    figures.append(Figure(benchmark=NAME, measure="peak memory (RSS)", unit="MiB",
                          mapo=max(r["step_peak_mib"] for r in [first, *records]),
                          note="whole process during one step (Python, torch, tiny model, verifier)"))
    return figures
