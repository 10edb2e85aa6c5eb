"""The world generator: determinism, question invariants (decoys make low-resolution views ambiguous)."""

from __future__ import annotations

from collections import Counter

import pytest

from mapo.data.images import image_hash
from mapo.data.task import LETTERS
from mapo.data.world import WorldConfig, generate_tasks, load_world_config
from mapo.data.world.questions import RELATIONS, relation


@pytest.fixture(scope="module")
def cfg() -> WorldConfig:
    return WorldConfig(canvas_width=512, canvas_height=512, clutter=12, n_train=40, n_val=8, n_test=8)


@pytest.fixture(scope="module")
def tasks(cfg):
    return generate_tasks(cfg, "train")


def test_same_seed_same_tasks_and_prefix_property(cfg, tasks):
    again = generate_tasks(cfg, "train", n=10)
    for a, b in zip(tasks[:10], again):
        assert image_hash(a.image) == image_hash(b.image)
        assert (a.question, a.options, a.answer, a.extra) == (b.question, b.options, b.answer, b.extra)
    other_seed = generate_tasks(cfg.model_copy(update={"seed": 1}), "train", n=3)
    assert [image_hash(t.image) for t in other_seed] != [image_hash(t.image) for t in tasks[:3]]
    val = generate_tasks(cfg, "val", n=3)
    assert {image_hash(t.image) for t in val}.isdisjoint({image_hash(t.image) for t in tasks})


def test_every_task_is_a_consistent_four_option_question(cfg, tasks):
    for t in tasks:
        assert t.image.size == (cfg.canvas_width, cfg.canvas_height)
        assert len(t.options) == 4 and len(set(t.options)) == 4
        assert t.answer in LETTERS[:4]
        objects = t.extra["objects"]
        targets = [o for o in objects if o["role"] == "target"]
        assert [b.as_list() for b in t.targets] == [list(map(float, o["box"])) for o in targets]
        assert len(t.target_names) == len(t.targets)
        for o in objects:  # inside the canvas, and no two objects overlap
            x1, y1, x2, y2 = o["box"]
            assert 0 <= x1 < x2 <= cfg.canvas_width and 0 <= y1 < y2 <= cfg.canvas_height
        boxes = [o["box"] for o in objects]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        ask = t.extra["query"]["ask"]
        truth = t.answer_text
        if ask in ("glyph", "colour", "shape"):
            assert targets[0][ask] == truth
            # the options are exactly what the low-resolution candidates show
            if ask != "glyph":
                same = "shape" if ask == "colour" else "colour"
                candidates = [o for o in objects if o[same] == targets[0][same]]
                assert sorted(o[ask] for o in candidates) == sorted(t.options)
            else:
                same_kind = [
                    o
                    for o in objects
                    if (o["colour"], o["shape"]) == (targets[0]["colour"], targets[0]["shape"])
                ]
                assert same_kind == [targets[0]]
        elif ask == "relation":
            a, b = targets
            assert relation(a, b)[0] == truth and sorted(t.options) == sorted(RELATIONS)
            kinds = {(a["colour"], a["shape"]), (b["colour"], b["shape"])}
            cands_a = [o for o in objects if (o["colour"], o["shape"]) == (a["colour"], a["shape"])]
            cands_b = [o for o in objects if (o["colour"], o["shape"]) == (b["colour"], b["shape"])]
            assert len(kinds) == 2 and len(cands_a) == len(cands_b) == 2
            assert sorted(relation(x, y)[0] for x in cands_a for y in cands_b) == sorted(RELATIONS)
        else:
            assert ask == "sum"
            assert int(truth) == sum(int(o["glyph"]) for o in targets)


def test_families_and_answers_are_spread(tasks):
    families = Counter(t.extra["query"]["family"] for t in tasks)
    assert set(families) == {"attribute", "relative_position", "digit_sum"}
    letters = Counter(
        t.answer
        for t in generate_tasks(WorldConfig(canvas_width=256, canvas_height=256, clutter=0), "train", n=200)
    )
    assert set(letters) == set("ABCD") and max(letters.values()) < 80  # shuffled, not always "A"


def test_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "world.yaml"
    path.write_text("canvas_width: 800\nclutter: 5\n")
    cfg = load_world_config(path, ["clutter=7", "families=[digit_sum]"])
    assert (cfg.canvas_width, cfg.clutter, cfg.families) == (800, 7, ["digit_sum"])
    with pytest.raises(ValueError, match="unknown world config field 'clutterr'"):
        load_world_config(None, ["clutterr=3"])
    with pytest.raises(ValueError, match="object_size_max"):
        WorldConfig(object_size_min=40, object_size_max=20)


def test_unique_target_colour_keeps_the_targets_colour_off_the_clutter(cfg):
    easy = cfg.model_copy(update={"unique_target_colour": True})
    for task in generate_tasks(easy, "train", n=20):
        objects = task.extra["objects"]
        colours = {o["colour"] for o in objects if o["role"] == "target"}
        assert not [o for o in objects if o["role"] == "clutter" and o["colour"] in colours]
    # off (the default) leaves the world as it was: same bytes as before the knob existed
    assert [image_hash(t.image) for t in generate_tasks(cfg, "train", n=3)] == [
        image_hash(t.image) for t in generate_tasks(cfg.model_copy(update={"unique_target_colour": False}),
                                                    "train", n=3)]


def test_target_size_draws_targets_larger_than_the_clutter(cfg):
    big = cfg.model_copy(update={"target_size_min": 48, "target_size_max": 56})
    for task in generate_tasks(big, "train", n=12):
        for o in task.extra["objects"]:
            lo, hi = (48, 56) if o["role"] == "target" else (cfg.object_size_min, cfg.object_size_max)
            assert lo <= o["size"] <= hi, o
        assert all(48 <= b.width <= 56 for b in task.targets)
    # unset (the default) draws targets like every object: the same bytes as before the knob existed
    assert [image_hash(t.image) for t in generate_tasks(cfg, "train", n=3)] == [
        image_hash(t.image) for t in generate_tasks(cfg.model_copy(update={"target_size_min": None}), "train", n=3)]
    with pytest.raises(ValueError, match="target_size_max"):
        WorldConfig(target_size_min=60, target_size_max=40)
