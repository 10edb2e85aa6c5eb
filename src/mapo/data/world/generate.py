"""Seeded, deterministic generation of world tasks: plan a question, lay out objects, render, ask.

Each (seed, split, index) has its own random generator, so ``generate_tasks(cfg, split, n)`` is a prefix of
the full split and any task can be regenerated alone.
"""

from __future__ import annotations

import random

from tqdm import tqdm

from mapo.data.task import LETTERS, Box, Task
from mapo.data.world.captions import describe
from mapo.data.world.config import WorldConfig
from mapo.data.world.gap import apply_answer_prior
from mapo.data.world.questions import (
    QuestionPlan,
    ask_question,
    plan_attribute,
    plan_digit_sum,
    plan_relative_position,
)
from mapo.data.world.render import BACKGROUNDS, COLOURS, GLYPHS, SHAPES, Nuisance, render_scene

DATA_SOURCE = "mapo_world"

_EDGE = 8  # keep objects this many pixels away from the canvas border
_MAX_LAYOUT_TRIES = 20_000


def task_rng(cfg: WorldConfig, split: str, index: int) -> random.Random:
    """The generator of one task; string seeds hash with SHA-512, stable across Python versions."""
    return random.Random(f"mapo-world:{cfg.seed}:{split}:{index}")


def _plan(rng: random.Random, cfg: WorldConfig) -> QuestionPlan:
    family = rng.choice(cfg.families)
    if family == "attribute":
        return plan_attribute(rng, rng.choice(cfg.attribute_asks))
    if family == "relative_position":
        return plan_relative_position(rng)
    return plan_digit_sum(rng)


def _random_box(rng: random.Random, cfg: WorldConfig, target: bool = False) -> list[int]:
    if target and (cfg.target_size_min is not None or cfg.target_size_max is not None):
        size = rng.randint(cfg.target_size_min or cfg.object_size_min, cfg.target_size_max or cfg.object_size_max)
    else:
        size = rng.randint(cfg.object_size_min, cfg.object_size_max)
    x = rng.randint(_EDGE, cfg.canvas_width - _EDGE - size)
    y = rng.randint(_EDGE, cfg.canvas_height - _EDGE - size)
    return [x, y, x + size, y + size]


def _free(box: list[int], placed: list[dict], gap: int) -> bool:
    x1, y1, x2, y2 = box
    for other in placed:
        ox1, oy1, ox2, oy2 = other["box"]
        if x1 < ox2 + gap and ox1 < x2 + gap and y1 < oy2 + gap and oy1 < y2 + gap:
            return False
    return True


def _place_special(rng: random.Random, cfg: WorldConfig, plan: QuestionPlan) -> list[dict]:
    for _ in range(_MAX_LAYOUT_TRIES):
        placed: list[dict] = []
        for k, spec in enumerate(plan.special):
            box = _random_box(rng, cfg, target=k < plan.n_targets)
            if not _free(box, placed, cfg.min_gap):
                break
            placed.append({**spec, "box": box, "size": box[2] - box[0]})
        else:
            if plan.layout_ok(placed):
                return placed
    raise RuntimeError(
        f"could not lay out a {plan.family} question on a {cfg.canvas_width}x{cfg.canvas_height} "
        f"canvas in {_MAX_LAYOUT_TRIES} tries; use a larger canvas or smaller objects"
    )


def _place_clutter(
    rng: random.Random, cfg: WorldConfig, plan: QuestionPlan, placed: list[dict]
) -> list[dict]:
    colours = tuple(COLOURS)
    target_colours = {spec["colour"] for spec in plan.special[: plan.n_targets]}
    clutter: list[dict] = []
    for _ in range(cfg.clutter * 50):
        if len(clutter) == cfg.clutter:
            break
        attrs = {
            "colour": rng.choice(colours),
            "shape": rng.choice(SHAPES),
            "glyph": rng.choice(GLYPHS),
            "role": "clutter",
        }
        if plan.forbid(attrs) or (cfg.unique_target_colour and attrs["colour"] in target_colours):
            continue
        box = _random_box(rng, cfg)
        if _free(box, placed + clutter, cfg.min_gap):
            clutter.append({**attrs, "box": box, "size": box[2] - box[0]})
    return clutter


def _background_lines(rng: random.Random, cfg: WorldConfig) -> list[tuple[float, float, float, float]]:
    w, h = cfg.canvas_width, cfg.canvas_height
    return [
        (rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h))
        for _ in range(cfg.background_lines)
    ]


def make_task(cfg: WorldConfig, split: str, index: int) -> Task:
    """Task ``index`` of ``split``: image, question, four shuffled options, target boxes and every object."""
    rng = task_rng(cfg, split, index)
    plan = _plan(rng, cfg)
    apply_answer_prior(plan, cfg.answer_prior, cfg.seed, split, index)  # the gap-world option; off by default
    special = _place_special(rng, cfg, plan)
    objects = special + _place_clutter(rng, cfg, plan, special)
    background = rng.choice(BACKGROUNDS)
    image = render_scene(
        cfg.canvas_width,
        cfg.canvas_height,
        objects,
        background,
        _background_lines(rng, cfg),
        cfg.glyph_contrast,
        Nuisance(cfg.fill_jitter, cfg.glyph_shift, cfg.glyph_scale),
        cfg.pattern_period,
        cfg.pattern_tint,
    )
    question, correct, distractors = ask_question(plan, special, rng)
    options = [correct, *distractors]
    rng.shuffle(options)
    targets = special[: plan.n_targets]
    return Task(
        id=f"{DATA_SOURCE}-{split}-{index:05d}",
        image=image,
        question=question,
        answer=LETTERS[options.index(correct)],
        options=options,
        category=plan.family if plan.family != "attribute" else f"attribute_{plan.ask}",
        source=DATA_SOURCE,
        targets=[Box(*map(float, t["box"])) for t in targets],
        target_names=[describe(t, 0) for t in targets],
        extra={
            "objects": objects,
            "query": {
                "family": plan.family,
                "ask": plan.ask,
                "known": list(plan.known),
                "n_targets": plan.n_targets,
            },
            "split": split,
            "index": index,
        },
    )


def generate_tasks(cfg: WorldConfig, split: str, n: int | None = None, progress: bool = False) -> list[Task]:
    """The first ``n`` tasks of ``split`` (default: the split's configured size). Deterministic in ``cfg``."""
    total = cfg.split_size(split) if n is None else n
    indices = range(total)
    if progress:
        indices = tqdm(indices, desc=f"world {split}", unit="task")
    return [make_task(cfg, split, i) for i in indices]
