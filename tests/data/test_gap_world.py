"""The gap-world option (WorldConfig.answer_prior): deterministic, off by default, and doing what it says."""

from __future__ import annotations

from mapo.data.task import LETTERS
from mapo.data.world.config import WorldConfig
from mapo.data.world.gap import prior_value
from mapo.data.world.generate import generate_tasks

BASE = {"canvas_width": 448, "canvas_height": 448, "clutter": 8, "families": ["attribute"],
        "attribute_asks": ["pattern", "glyph"]}


def _answers(tasks):
    return [t.options[LETTERS.index(t.answer)] for t in tasks]


def test_off_by_default_and_zero_draws_nothing():
    assert WorldConfig().answer_prior == 0.0
    plain = generate_tasks(WorldConfig(**BASE), "train", n=12)
    zero = generate_tasks(WorldConfig(**BASE, answer_prior=0.0), "train", n=12)
    assert [(t.question, t.options, t.answer, t.image.tobytes()) for t in plain] == \
        [(t.question, t.options, t.answer, t.image.tobytes()) for t in zero]


def test_same_config_same_tasks():
    a = generate_tasks(WorldConfig(**BASE, answer_prior=0.5), "val", n=12)
    b = generate_tasks(WorldConfig(**BASE, answer_prior=0.5), "val", n=12)
    assert [(t.options, t.answer, t.image.tobytes()) for t in a] == [(t.options, t.answer, t.image.tobytes()) for t in b]


def test_prior_one_makes_every_answer_the_prior_value_with_distinct_options():
    tasks = generate_tasks(WorldConfig(**BASE, answer_prior=1.0), "train", n=16)
    for task, answer in zip(tasks, _answers(tasks)):
        ask = task.extra["query"]["ask"]
        assert answer == prior_value(ask)
        assert len(set(task.options)) == 4
        assert len(task.targets) == 1


def test_prior_share_is_roughly_p_and_only_the_answer_attribute_changes():
    n = 60
    plain = generate_tasks(WorldConfig(**BASE), "train", n=n)
    half = generate_tasks(WorldConfig(**BASE, answer_prior=0.5), "train", n=n)
    hits = sum(a == prior_value(t.extra["query"]["ask"]) for t, a in zip(half, _answers(half)))
    chance = sum(a == prior_value(t.extra["query"]["ask"]) for t, a in zip(plain, _answers(plain)))
    assert hits >= chance + n * 0.25
    # the question (which names the target) and the target's place are the same task for task
    assert [(t.question, t.targets) for t in plain] == [(t.question, t.targets) for t in half]
