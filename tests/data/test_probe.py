"""The zoom probe's parts: patches come from the right place in each view, the reader answers from them."""

from __future__ import annotations

import numpy as np

from mapo.data.task import LETTERS
from mapo.data.world import COLOURS, WorldConfig, generate_tasks
from mapo.data.world.probe import ATTRIBUTE_VALUES, PATCH, answer, crop_patch, whole_patches

CFG = WorldConfig(canvas_width=896, canvas_height=896, clutter=20, fill_jitter=0)
TASKS = generate_tasks(CFG, "val", n=30)


def _one_hot(task, noisy_rows=()):
    objects = task.extra["objects"]
    probs = {}
    for a, values in ATTRIBUTE_VALUES.items():
        p = np.zeros((len(objects), len(values)))
        for k, o in enumerate(objects):
            if o.get(a) is None:  # a plain object shows no pattern
                p[k] = 1.0 / len(values)
            else:
                p[k, values.index(o[a])] = 1.0
        for k in noisy_rows:
            p[k] = 1.0 / len(values)
        probs[a] = p
    return probs


def test_patches_show_the_object_in_both_views():
    task = TASKS[0]
    patches = whole_patches(task, CFG)
    assert patches.shape == (len(task.extra["objects"]), PATCH, PATCH, 3) and patches.dtype == np.float32
    for k, obj in enumerate(task.extra["objects"][:6]):
        want = np.array(COLOURS[obj["colour"]]) / 255
        for patch in (patches[k], crop_patch(task, obj, CFG)):
            centre = patch[PATCH // 2 - 2 : PATCH // 2 + 2, PATCH // 2 - 2 : PATCH // 2 + 2].reshape(-1, 3)
            # the fill colour dominates the patch centre (the digit covers part of it)
            assert np.abs(np.median(centre, axis=0) - want).max() < 0.25, (obj, np.median(centre, axis=0))


def test_reader_is_right_with_perfect_reading_and_guesses_without_it():
    assert all(answer(t, _one_hot(t)) == t.answer for t in TASKS)
    rng = np.random.default_rng(0)
    wrong = 0
    for t in TASKS:  # digits unreadable everywhere: a reader cannot do much better than chance
        probs = _one_hot(t)
        probs["glyph"][:] = 1.0 / len(ATTRIBUTE_VALUES["glyph"])
        probs["glyph"] += rng.uniform(0, 1e-3, probs["glyph"].shape)  # break ties at random
        wrong += answer(t, probs) != t.answer
    assert wrong >= len(TASKS) // 2
    assert {answer(t, _one_hot(t)) for t in TASKS} <= set(LETTERS[:4])


def test_the_probe_learns_only_what_each_object_shows():
    import torch

    from mapo.data.world.probe import IGNORE, _labels, train_reader

    pat = CFG.model_copy(update={"families": ["attribute"], "attribute_asks": ["pattern"]})
    task = generate_tasks(pat, "train", n=1)[0]
    objects = task.extra["objects"]
    labels = _labels(objects)
    for k, o in enumerate(objects):
        assert (labels["pattern"][k] == IGNORE) == (not o.get("pattern"))  # plain objects show no pattern
        assert (labels["glyph"][k] == IGNORE) == bool(o.get("pattern"))  # patterned ones show no digit
    # a batch in which no object shows a pattern still trains (no NaN from an all-ignored attribute)
    plain = [o for o in objects if not o.get("pattern")]
    reader = train_reader(whole_patches(task, pat)[[k for k, o in enumerate(objects) if not o.get("pattern")]],
                          plain, epochs=1)
    assert all(torch.isfinite(p).all() for p in reader.parameters())


def test_patches_of_objects_at_the_border_stay_inside_the_view():
    from PIL import Image

    from mapo.data.world.probe import _patch

    view = Image.new("RGB", (224, 224), (200, 10, 10))
    for box in ([0, 0, 100, 100], [924, 924, 1024, 1024]):  # widened by 10%, both would leave the view
        patch = _patch(view, box, 224 / 1024, 224 / 1024)
        assert patch.shape == (PATCH, PATCH, 3) and abs(float(patch[..., 0].mean()) - 200 / 255) < 0.01
