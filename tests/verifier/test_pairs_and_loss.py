"""Training pairs cut from the world (one renderer) and the masked contrastive loss."""

from __future__ import annotations

import random

import pytest
import torch

from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import generate_tasks
from mapo.verifier.loss import lit_loss, masked_info_nce
from mapo.verifier.pairs import KEYS, PairConfig, caption_matches, hit_box, make_pairs, miss_box


@pytest.fixture(scope="module")
def tasks():
    return generate_tasks(WorldConfig(canvas_width=512, canvas_height=512, clutter=12), "train", 3)


def _inside(outer, inner, fraction=1.0):
    iw = min(outer[2], inner[2]) - max(outer[0], inner[0])
    ih = min(outer[3], inner[3]) - max(outer[1], inner[1])
    return max(0, iw) * max(0, ih) >= fraction * (inner[2] - inner[0]) * (inner[3] - inner[1]) - 1e-9


def test_hit_boxes_contain_the_object_within_the_margins(tasks):
    rng, cfg = random.Random(0), PairConfig(margin_min=1.3, margin_max=2.5)
    for task in tasks:
        for obj in task.extra["objects"]:
            box = hit_box(obj["box"], task.image.size, rng, cfg)
            side = obj["box"][2] - obj["box"][0]
            assert _inside(box, obj["box"])
            assert 1.3 * side - 1 <= box[2] - box[0] <= 2.5 * side + 1
            assert 0 <= box[0] and box[2] <= task.image.width and 0 <= box[1] and box[3] <= task.image.height


def test_miss_boxes_avoid_every_lookalike(tasks):
    rng = random.Random(1)
    for task in tasks:
        objects = task.extra["objects"]
        for obj in objects[:6]:
            box = miss_box(objects, obj, 80, task.image.size, ("colour", "shape"), rng)
            for other in objects:
                if other["colour"] == obj["colour"] and other["shape"] == obj["shape"]:
                    assert not _inside(box, other["box"], 0.15)


def test_pairs_carry_consistent_codes_and_one_attribute_hard_negatives(tasks):
    pairs = make_pairs(tasks, [0, 1, 2, 3], random.Random(2), per_task=5)
    assert len(pairs) == 15 and len(pairs.hit) == len(pairs.miss) == len(pairs.negatives) == 15
    named = pairs.caption_named
    assert torch.equal(pairs.caption_codes, pairs.object_codes)
    changed = (pairs.negative_codes != pairs.caption_codes)
    assert torch.all(changed.sum(-1) == 1) and torch.all(changed <= named)
    assert all(n != c for n, c in zip(pairs.negatives, pairs.captions))
    # a caption is always true of its own object and its hard negative never is
    assert caption_matches(pairs.caption_codes, named, pairs.object_codes).diagonal().all()
    assert not caption_matches(pairs.negative_codes, named, pairs.object_codes).diagonal().any()


def test_forced_full_subset_names_colour_shape_and_digit(tasks):
    pairs = make_pairs(tasks[:1], [0], random.Random(3), per_task=3, subset=KEYS)
    assert pairs.caption_named.all()
    for caption, codes in zip(pairs.captions, pairs.object_codes.tolist()):
        assert "digit" in caption


def test_caption_matches_ignores_unnamed_attributes():
    caption = torch.tensor([[0, 1, 2], [0, 1, 2]])
    named = torch.tensor([[True, True, True], [True, False, False]])
    objects = torch.tensor([[0, 1, 2], [0, 5, 5], [3, 1, 2]])
    assert caption_matches(caption, named, objects).tolist() == [[True, False, False], [True, True, False]]


def test_masked_entries_get_no_gradient():
    logits = torch.randn(3, 4, requires_grad=True)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 2] = True
    masked_info_nce(logits, mask).backward()
    assert logits.grad[0, 2] == 0 and logits.grad[0, 1] != 0


def test_lit_loss_prefers_aligned_embeddings():
    torch.manual_seed(0)
    b, d = 6, 16
    text = torch.nn.functional.normalize(torch.randn(b, d), dim=-1)
    negative = torch.nn.functional.normalize(torch.randn(b, d), dim=-1)
    miss = torch.nn.functional.normalize(torch.randn(2, d), dim=-1)
    eye = torch.eye(b, dtype=torch.bool)
    args = {"match": eye, "negative_match": torch.zeros(b, b, dtype=torch.bool),
            "inv_temperature": torch.tensor(10.0), "sigmoid_scale": torch.tensor(10.0),
            "sigmoid_bias": torch.tensor(-3.0)}
    aligned = lit_loss(text, negative, text.clone(), miss, **args)["loss"]
    shuffled = lit_loss(text, negative, text.roll(1, 0), miss, **args)["loss"]
    assert aligned < shuffled


def test_sigmoid_loss_weighs_the_few_hard_negatives_like_all_easy_ones():
    from mapo.verifier.loss import balanced_sigmoid_loss

    labels = torch.tensor([True] + [False] * 101)
    hard = torch.tensor([False, True] + [False] * 100)
    base = torch.tensor([5.0] + [-5.0] * 101)
    hard_wrong, easy_wrong = base.clone(), base.clone()
    hard_wrong[1] = 5.0  # the one hard negative scored as a match
    easy_wrong[2] = 5.0  # one of the hundred easy negatives scored as a match
    assert balanced_sigmoid_loss(hard_wrong, labels, hard) > 10 * balanced_sigmoid_loss(easy_wrong, labels, hard)


def test_attribute_probe_loss_is_low_only_for_the_right_classes():
    from mapo.verifier.loss import attribute_probe_loss

    right = torch.full((1, 6), -9.0)  # classes [2, 3, 1]: logits 0-1, 2-4, 5
    right[0, 1] = right[0, 2 + 0] = right[0, 5] = 9.0
    wrong = torch.full((1, 6), -9.0)
    wrong[0, 0] = wrong[0, 3] = wrong[0, 4] = 9.0
    classes = [2, 3, 1]
    codes = torch.tensor([[1, 0, 0]])
    assert attribute_probe_loss(right, codes, classes) < 1e-3 < attribute_probe_loss(wrong, codes, classes)
    # a weight of 0 ignores that attribute; a weight of 2 doubles its share
    only_first_wrong = right.clone()
    only_first_wrong[0, 0], only_first_wrong[0, 1] = 9.0, -9.0
    assert attribute_probe_loss(only_first_wrong, codes, classes, [0.0, 1.0, 1.0]) < 1e-3
    torch.testing.assert_close(attribute_probe_loss(only_first_wrong, codes, classes, [2.0, 1.0, 1.0]),
                               2 * attribute_probe_loss(only_first_wrong, codes, classes), rtol=1e-3, atol=1e-4)


def test_generic_labels_count_as_hard_negatives():
    torch.manual_seed(1)
    b, d = 4, 8
    text = torch.nn.functional.normalize(torch.randn(b, d), dim=-1)
    miss = torch.nn.functional.normalize(torch.randn(1, d), dim=-1)
    args = {"match": torch.eye(b, dtype=torch.bool), "negative_match": torch.zeros(b, b, dtype=torch.bool),
            "inv_temperature": torch.tensor(10.0), "sigmoid_scale": torch.tensor(10.0),
            "sigmoid_bias": torch.tensor(-3.0)}
    hit = text.clone()
    far = lit_loss(text, -text, hit, miss, generic_text=-hit[:1], **args)["sigmoid"]
    close = lit_loss(text, -text, hit, miss, generic_text=hit[:1], **args)["sigmoid"]  # vague label fits crop 0
    assert close > far
