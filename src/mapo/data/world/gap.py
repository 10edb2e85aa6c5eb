"""The gap-world option: an answer prior that makes right answers reachable without looking.

With ``WorldConfig.answer_prior = p > 0``, an attribute question's answer is, with probability ``p`` (per task,
from its own seeded stream), the *prior value* of the asked attribute: the first entry of its vocabulary
(``horizontal stripes`` for patterns, ``0`` for digits, ``red`` for colours, ``circle`` for shapes). If a decoy
held that value it takes the target's old one, so the four options stay distinct and the layout unchanged.
A policy that always answers the prior value is then right on ``p + (1 - p) / 4``-ish of the tasks whatever it
zooms at: the regime where outcome-only RL rewards lucky answers after wrong zooms (the reasoning-action gap).
Relation and digit-sum questions are left as they are. ``p = 0`` (default) draws nothing: the world is
byte-identical to one made without the option.
"""

from __future__ import annotations

import random

from mapo.data.world.questions import COLOUR_NAMES, QuestionPlan
from mapo.data.world.render import GLYPHS, PATTERNS, SHAPES

#: The asked attribute -> its vocabulary; the first entry is the prior value.
VOCABULARY: dict[str, tuple[str, ...]] = {"pattern": tuple(PATTERNS), "glyph": tuple(GLYPHS),
                                          "colour": tuple(COLOUR_NAMES), "shape": tuple(SHAPES)}


def prior_value(ask: str) -> str | None:
    """The value an answer prior favours for ``ask`` (None: the question family has no prior)."""
    vocab = VOCABULARY.get(ask)
    return vocab[0] if vocab else None


def apply_answer_prior(plan: QuestionPlan, answer_prior: float, seed: int, split: str, index: int) -> bool:
    """With probability ``answer_prior``, give the plan's target the prior value of the asked attribute (in
    place; swapped with the decoy that had it). Returns whether the task was drawn for the prior."""
    value = prior_value(plan.ask)
    if answer_prior <= 0 or value is None or plan.family != "attribute":
        return False
    if random.Random(f"mapo-world-prior:{seed}:{split}:{index}").random() >= answer_prior:
        return False
    target, key = plan.special[0], plan.ask
    old = target[key]
    for decoy in plan.special[1:]:
        if decoy.get(key) == value:
            decoy[key] = old
    target[key] = value
    return True
