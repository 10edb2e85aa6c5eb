"""Candidate fixes for what the profiler shows in a rollout, measured against the code as it is.

py-spy and the ``rollout`` split show, besides the model's own forward passes, a cost in mapo's code that
scales with the batch and the number of turns:

- **image preprocessing**: ``HFQwenBackend.pixel_inputs`` runs the image processor on every image of every
  context at every turn, although the G samples of a prompt share the same task image (and each later turn
  re-sends every earlier image). Fix: preprocess each distinct image once per call and gather the rows.

(The stop-sequence check, the other cost found here, was fixed in ``mapo.models.hf_qwen`` itself: it decodes a
row's tail only after a token that can close a stop string; tests/models/test_stop_check.py checks it.)

The fix is applied here as an in-process patch (the file belongs to the models layer), checked to give
bit-identical outputs, then timed interleaved with the unpatched code on the same rollouts.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from harness import Figure, PhaseTimer, median, speedup_from_times

NAME = "hotpaths"


def dedup_pixel_inputs(original):
    """``pixel_inputs`` that preprocesses each distinct image object once and gathers rows per position."""
    import torch

    def pixel_inputs(images):
        images = list(images)
        slot: dict[int, int] = {}
        unique, order = [], []
        for im in images:
            if id(im) not in slot:
                slot[id(im)] = len(unique)
                unique.append(im)
            order.append(slot[id(im)])
        if len(unique) == len(images):
            return original(images)
        out = original(unique)
        grid = out["image_grid_thw"]
        chunks = out["pixel_values"].split(grid.prod(-1).tolist())
        return {"pixel_values": torch.cat([chunks[j] for j in order]), "image_grid_thw": grid[order]}

    return pixel_inputs


class Patched:
    """Context manager applying the image-preprocessing fix to ``backend`` (an ``HFQwenBackend``) when asked."""

    def __init__(self, backend, pixels: bool):
        self.backend, self.pixels = backend, pixels

    def __enter__(self):
        if self.pixels:
            self.backend.pixel_inputs = dedup_pixel_inputs(type(self.backend).pixel_inputs.__get__(self.backend))
        return self

    def __exit__(self, *exc):
        self.backend.__dict__.pop("pixel_inputs", None)


def check_identical(backend, tasks) -> None:
    """The fix leaves outputs bit-identical: same pixel rows; same sampled rollouts under the same seed."""
    import torch

    from mapo.agent.protocol import ProtocolConfig
    from mapo.agent.rollout import RolloutEngine

    images = [tasks[0].image.resize((224, 224)), tasks[-1].image.resize((112, 224))]
    batch = [images[0], images[1], images[0], images[0]]
    ref = backend.pixel_inputs(batch)
    got = dedup_pixel_inputs(backend.pixel_inputs)(batch)
    if not all(torch.equal(ref[k], got[k]) for k in ref):
        raise AssertionError("deduplicated pixel_inputs differ from the original")
    engine = RolloutEngine(backend, None, ProtocolConfig(max_turns=2, max_new_tokens_per_turn=48))

    def ids():
        torch.manual_seed(0)
        return [t.response_ids.tolist() for t in engine.run(tasks[:1], 4)]

    plain = ids()
    with Patched(backend, pixels=True):
        fixed = ids()
    if plain != fixed:
        raise AssertionError("the patched rollout sampled different tokens than the original")


def run(quick: bool = False) -> list[Figure]:
    import tiny_setup
    import torch

    from mapo.agent.protocol import ProtocolConfig
    from mapo.agent.rollout import RolloutEngine
    from mapo.models.hf_qwen import load_policy

    n_tasks, group_size, repeats = (1, 2, 1) if quick else (2, 8, 3)
    with tempfile.TemporaryDirectory(prefix="mapo-bench-hot-") as tmp:
        setup = tiny_setup.build(Path(tmp), n_tasks=max(2, n_tasks), family="qwen2_5_vl")
        backend = load_policy(setup.model_dir)
    check_identical(backend, setup.tasks)
    # expert-paced: zooms, so contexts carry crops from earlier turns, as in a trained policy's rollout
    paced = tiny_setup.expert_paced(backend, setup.tasks)
    engine = RolloutEngine(paced, None, ProtocolConfig(max_turns=3, max_new_tokens_per_turn=128))
    tasks = setup.tasks[:n_tasks]

    def rollout(pixels: bool) -> dict:
        torch.manual_seed(0)
        with Patched(backend, pixels), PhaseTimer() as timer:
            timer.wrap(backend, "pixel_inputs", "image preprocessing", exclusive=False)
            begin = time.perf_counter()
            engine.run(tasks, group_size)
            total = time.perf_counter() - begin
        return {"rollout": total, **timer.seconds}

    variants = {"as is": False, "fixed": True}
    rollout(True)  # warm-up
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so machine load hits both alike
        for name, flags in variants.items():
            gc.collect()
            runs[name].append(rollout(flags))

    def med(name: str, part: str) -> float:
        return median([r.get(part, 0.0) for r in runs[name]])

    base = med("as is", "rollout")
    setting = (f"{n_tasks} prompts x G={group_size}, <= 3 turns, expert-paced tiny Qwen2.5-VL (zooms and crops); "
               f"outputs checked bit-identical")
    figures = []
    for part in ("image preprocessing",):
        before, after = med("as is", part), med("fixed", part)
        figures.append(Figure(
            benchmark=NAME, measure=f"fix: {part}", unit="s per rollout", mapo=after, reference=before,
            reference_name="code as it is", speedup=speedup_from_times(after, before),
            note=f"saves {100 * (before - after) / base:.1f}% of a {base:.2f} s rollout; {setting}"))
    figures.append(Figure(
        benchmark=NAME, measure="fix: whole rollout", unit="s", mapo=med("fixed", "rollout"), reference=base,
        reference_name="code as it is", speedup=speedup_from_times(med("fixed", "rollout"), base),
        note="end to end; within the machine's noise when the parts above are small", extra=runs))
    return figures
