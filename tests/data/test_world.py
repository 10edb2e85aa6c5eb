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


def test_pattern_questions_ask_what_only_the_zoom_shows(cfg):
    import numpy as np
    from PIL import Image

    from mapo.data.world.render import PATTERNS, pattern_mask

    pat = cfg.model_copy(update={"attribute_asks": ["pattern"], "families": ["attribute"], "target_size_min": 40,
                                 "target_size_max": 48, "fill_jitter": 0})
    tasks = generate_tasks(pat, "train", n=12)
    for task in tasks:
        special = [o for o in task.extra["objects"] if o["role"] != "clutter"]
        target = special[0]
        assert task.question == f"What pattern is on the {target['colour']} {target['shape']}?"
        assert task.options[LETTERS.index(task.answer)] == target["pattern"]
        assert sorted(task.options) == sorted(o["pattern"] for o in special)  # each option is on some object
        assert len(set(task.options)) == 4 and set(task.options) <= set(PATTERNS)
        assert not any(o.get("pattern") for o in task.extra["objects"] if o["role"] == "clutter")
        assert task.target_names[0].endswith(f"with {target['pattern']}")
    assert Counter(t.options[LETTERS.index(t.answer)] for t in tasks).most_common(1)[0][1] < 12
    # full resolution: the fill alternates two tints; every pattern lightens half of it
    for name in PATTERNS:
        on = np.asarray(pattern_mask(name, 40, 40, 4)) > 0
        assert 0.45 < on.mean() < 0.55, name
    task = tasks[0]
    x1, y1, x2, y2 = task.extra["objects"][0]["box"]
    centre = np.asarray(task.image.crop((x1 + 14, y1 + 14, x2 - 14, y2 - 14))).reshape(-1, 3)
    assert len({tuple(p) for p in centre}) == 2
    # shrunk 8x (the whole view), the patterns all look alike: one tint, whatever the pattern
    means = []
    for name in PATTERNS:
        img = Image.new("RGB", (64, 64), (215, 40, 40))
        img.paste((247, 190, 190), (0, 0), pattern_mask(name, 64, 64, 4))
        means.append(np.asarray(img.resize((8, 8), Image.BICUBIC), dtype=float)[2:6, 2:6].mean((0, 1)))
    assert np.ptp(np.array(means), axis=0).max() < 6, means
    with pytest.raises(ValueError, match="unknown pattern"):
        pattern_mask("zigzag", 8, 8, 4)
    with pytest.raises(ValueError, match="period"):
        pattern_mask("checks", 8, 8, 1)


def test_pattern_knob_leaves_other_worlds_unchanged(cfg):
    """Worlds that do not ask for patterns draw the same bytes whatever the pattern settings."""
    other = cfg.model_copy(update={"pattern_period": 6, "pattern_tint": 0.3})
    assert [image_hash(t.image) for t in generate_tasks(cfg, "train", n=3)] == [
        image_hash(t.image) for t in generate_tasks(other, "train", n=3)]
