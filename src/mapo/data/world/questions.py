"""Question families of the world, built so that the whole image at the model's resolution cannot answer them.

Every family hinges on a digit (unreadable when the canvas is shrunk to the model's budget) and places
*decoys* so that what *is* readable at low resolution (colours, rough shapes) is equally consistent with every
option:
- ``attribute``/``glyph``: "What digit is on the red triangle?" — target unique by colour+shape; the digit is
  the answer. Decoys (same shape, other colours) carry the other options' digits.
- ``attribute``/``colour``: "What colour is the triangle marked 7?" — exactly one triangle per option colour.
- ``attribute``/``shape``: "What shape is the red object marked 7?" — exactly one red object per option shape.
- ``attribute``/``pattern``: "What pattern is on the red triangle?" — the fine stripes or checks on the target
  (patterned objects carry no digit); decoys (same shape, other colours) carry the other options' patterns.
  Shrunk, every pattern is the same flat tint; a texture, which the tiny models' vision towers fit in a couple of
  hundred steps where they did not learn shapes or digits (scripts/vision_learnability.py, the README).
- ``relative_position`` (V* style): "Where is the red triangle marked 3 relative to the blue circle marked 8?"
  — a same-looking decoy of each, placed so the four (candidate, candidate) pairs show the four relations.
- ``digit_sum`` (two zooms): "What is the sum of the digits on the red triangle and the blue circle?"
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mapo.data.world.captions import describe
from mapo.data.world.render import COLOURS, GLYPHS, PATTERNS, SHAPES

RELATIONS = ("left", "right", "above", "below")

COLOUR_NAMES = tuple(COLOURS)


@dataclass
class QuestionPlan:
    """What a family decided before layout: the special objects (targets first) and what clutter must avoid."""

    family: str
    ask: str  # the attribute the answer is about: glyph | colour | shape | pattern | relation | sum
    special: list[dict]  # attribute dicts (no box yet); the first ``n_targets`` are the targets
    n_targets: int
    known: tuple[str, ...]  # target attributes the question names (what a model knows before zooming)
    forbid: Callable[[dict], bool]  # True for clutter attributes that would make the question ambiguous
    layout_ok: Callable[[list[dict]], bool] = field(default=lambda placed: True)


def _obj(colour: str, shape: str, glyph: str, role: str) -> dict:
    return {"colour": colour, "shape": shape, "glyph": glyph, "role": role}


def centre(obj: dict) -> tuple[float, float]:
    x1, y1, x2, y2 = obj["box"]
    return (x1 + x2) / 2, (y1 + y2) / 2


def relation(a: dict, b: dict) -> tuple[str, float]:
    """Where ``a`` is relative to ``b`` along the dominant axis, and how dominant it is (|major| / |minor|)."""
    (ax, ay), (bx, by) = centre(a), centre(b)
    dx, dy = ax - bx, ay - by
    if abs(dx) >= abs(dy):
        return ("left" if dx < 0 else "right"), abs(dx) / max(abs(dy), 1e-6)
    return ("above" if dy < 0 else "below"), abs(dy) / max(abs(dx), 1e-6)


def _named_by_colour_and_shape(ask: str, target: dict, decoys: list[dict]) -> QuestionPlan:
    """An attribute question naming the target by colour and shape; clutter may not repeat that pair."""
    colour, shape = target["colour"], target["shape"]
    return QuestionPlan("attribute", ask, [target, *decoys], 1, ("colour", "shape"),
                        lambda o: o["colour"] == colour and o["shape"] == shape)


def plan_attribute(rng: random.Random, ask: str) -> QuestionPlan:
    colour, shape, glyph = rng.choice(COLOUR_NAMES), rng.choice(SHAPES), rng.choice(GLYPHS)
    target = _obj(colour, shape, glyph, "target")
    other_glyphs = [g for g in GLYPHS if g != glyph]
    if ask == "glyph":
        colours = rng.sample([c for c in COLOUR_NAMES if c != colour], 3)
        digits = rng.sample(other_glyphs, 3)
        decoys = [_obj(c, shape, d, "decoy") for c, d in zip(colours, digits)]
        return _named_by_colour_and_shape(ask, target, decoys)
    if ask == "colour":
        colours = rng.sample([c for c in COLOUR_NAMES if c != colour], 3)
        decoys = [_obj(c, shape, rng.choice(other_glyphs), "decoy") for c in colours]
        return QuestionPlan(
            "attribute", ask, [target, *decoys], 1, ("shape", "glyph"), lambda o: o["shape"] == shape
        )
    if ask == "shape":
        shapes = rng.sample([s for s in SHAPES if s != shape], 3)
        decoys = [_obj(colour, s, rng.choice(other_glyphs), "decoy") for s in shapes]
        return QuestionPlan(
            "attribute", ask, [target, *decoys], 1, ("colour", "glyph"), lambda o: o["colour"] == colour
        )
    if ask == "pattern":
        target["pattern"] = rng.choice(PATTERNS)
        colours = rng.sample([c for c in COLOUR_NAMES if c != colour], 3)
        patterns = rng.sample([p for p in PATTERNS if p != target["pattern"]], 3)
        decoys = [{**_obj(c, shape, rng.choice(other_glyphs), "decoy"), "pattern": p}
                  for c, p in zip(colours, patterns)]
        return _named_by_colour_and_shape(ask, target, decoys)
    raise ValueError(f"unknown attribute ask {ask!r}; use glyph, colour, shape or pattern")


def _two_kinds(rng: random.Random) -> tuple[tuple[str, str], tuple[str, str]]:
    while True:
        a = (rng.choice(COLOUR_NAMES), rng.choice(SHAPES))
        b = (rng.choice(COLOUR_NAMES), rng.choice(SHAPES))
        if a != b:
            return a, b


def plan_relative_position(rng: random.Random) -> QuestionPlan:
    (ca, sa), (cb, sb) = _two_kinds(rng)
    ga, ga2 = rng.sample(GLYPHS, 2)
    gb, gb2 = rng.sample(GLYPHS, 2)
    special = [
        _obj(ca, sa, ga, "target"),
        _obj(cb, sb, gb, "target"),
        _obj(ca, sa, ga2, "decoy"),
        _obj(cb, sb, gb2, "decoy"),
    ]

    def layout_ok(placed: list[dict]) -> bool:
        a, b, a2, b2 = placed
        pairs = [relation(a, b), relation(a2, b), relation(a, b2), relation(a2, b2)]
        if len({rel for rel, _ in pairs}) != 4:  # each option is the answer for exactly one candidate pair
            return False
        return pairs[0][1] >= 1.5 and all(ratio >= 1.2 for _, ratio in pairs[1:])

    return QuestionPlan(
        "relative_position",
        "relation",
        special,
        2,
        ("colour", "shape", "glyph"),
        lambda o: (o["colour"], o["shape"]) in {(ca, sa), (cb, sb)},
        layout_ok,
    )


def plan_digit_sum(rng: random.Random) -> QuestionPlan:
    (ca, sa), (cb, sb) = _two_kinds(rng)
    special = [_obj(ca, sa, rng.choice(GLYPHS), "target"), _obj(cb, sb, rng.choice(GLYPHS), "target")]
    return QuestionPlan(
        "digit_sum",
        "sum",
        special,
        2,
        ("colour", "shape"),
        lambda o: (o["colour"], o["shape"]) in {(ca, sa), (cb, sb)},
    )


#: attribute asked -> its question about the named target (the options: that attribute of the first objects)
ATTRIBUTE_QUESTIONS = {"glyph": "What digit is written on {}?", "colour": "What colour is {}?",
                       "pattern": "What pattern is on {}?", "shape": "What shape is {}?"}


def ask_question(plan: QuestionPlan, placed: list[dict], rng: random.Random) -> tuple[str, str, list[str]]:
    """The question text, the correct option text and three distractor option texts, for placed objects."""
    targets = placed[: plan.n_targets]
    names = [describe(t, 0, plan.known) for t in targets]
    if plan.ask in ATTRIBUTE_QUESTIONS:
        key = plan.ask
        return (ATTRIBUTE_QUESTIONS[key].format(names[0]), targets[0][key], [d[key] for d in placed[1:4]])
    if plan.ask == "relation":
        rel, _ = relation(targets[0], targets[1])
        return (f"Where is {names[0]} relative to {names[1]}?", rel, [r for r in RELATIONS if r != rel])
    if plan.ask == "sum":
        total = int(targets[0]["glyph"]) + int(targets[1]["glyph"])
        # Distractors follow the same law as the true sum (sum of two uniform digits), so no option is
        # more plausible a priori.
        distractors: list[int] = []
        while len(distractors) < 3:
            s = rng.randint(0, 9) + rng.randint(0, 9)
            if s != total and s not in distractors:
                distractors.append(s)
        return (
            f"What is the sum of the digits on {names[0]} and {names[1]}?",
            str(total),
            [str(s) for s in distractors],
        )
    raise ValueError(f"unknown ask {plan.ask!r}")
