"""Expert trajectories: they parse as intended, clean zooms contain the target, imperfections hit their rates."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mapo.agent.parser import parse_turn
from mapo.data.expert import ExpertConfig, expert_trajectory, expert_turns
from mapo.data.task import LETTERS, Box
from mapo.data.world import WorldConfig, generate_tasks
from mapo.data.world.captions import describe

TASKS = generate_tasks(WorldConfig(canvas_width=640, canvas_height=640, clutter=16), "train", n=24)


def _targets(task):
    return [Box(*map(float, o["box"])) for o in task.extra["objects"] if o["role"] == "target"]


def test_clean_expert_parses_zooms_on_each_target_and_answers_right():
    rng = random.Random(0)
    for task in TASKS:
        traj = expert_trajectory(task, rng, ExpertConfig(refine_rate=0.5))
        assert traj.imperfection == "none" and traj.correct and all(traj.hits)
        parsed = [parse_turn(text) for text in traj.turns]
        assert [p.kind for p in parsed] == ["tool_call"] * (len(parsed) - 1) + ["answer"]
        assert parsed[-1].answer.strip() == task.answer
        calls = [p.tool_call for p in parsed[:-1]]
        assert [c.bbox for c in calls] == traj.boxes and [c.label for c in calls] == traj.labels
        assert all(p.think for p in parsed)
        targets = _targets(task)
        assert len(calls) >= len(targets)
        for target in targets:  # every target is fully inside some zoom, with some context around it
            assert any(Box(*c.bbox).contains(target) and Box(*c.bbox).area > 1.5 * target.area for c in calls)
        known = tuple(task.extra["query"]["known"])
        for call in calls:
            assert call.label in {
                describe(o, k, known)
                for o in task.extra["objects"]
                if o["role"] == "target"
                for k in range(4)
            }
        assert expert_turns(task, random.Random(5)) == expert_turns(task, random.Random(5))


def test_imperfections_happen_at_their_rates_and_do_what_they_say():
    cfg = ExpertConfig(no_zoom_rate=0.1, elsewhere_rate=0.2, wrong_label_rate=0.15, guess_rate=0.1)
    rng = random.Random(1)
    seen: Counter = Counter()
    correct: Counter = Counter()
    n = 0
    for _ in range(40):
        for task in TASKS:
            traj = expert_trajectory(task, rng, cfg)
            n += 1
            seen[traj.imperfection] += 1
            correct[traj.imperfection] += traj.correct
            parsed = [parse_turn(t) for t in traj.turns]
            assert parsed[-1].kind == "answer" and parsed[-1].answer.strip() == traj.answer
            clean_labels = {
                describe(o, k, tuple(task.extra["query"]["known"]))
                for o in task.extra["objects"]
                if o["role"] == "target"
                for k in range(4)
            }
            if traj.imperfection == "no_zoom":
                assert len(parsed) == 1 and not traj.boxes
            elif traj.imperfection == "elsewhere":
                assert not any(traj.hits)
                assert all(Box(*b).intersection(t) == 0 for b in traj.boxes for t in _targets(task))
            elif traj.imperfection == "wrong_label":
                assert all(traj.hits) and traj.correct and not set(traj.labels) & clean_labels
            else:
                assert all(traj.hits) and set(traj.labels) <= clean_labels
    for name, rate in (
        ("no_zoom", 0.1),
        ("elsewhere", 0.2),
        ("wrong_label", 0.15),
        ("guess", 0.1),
        ("none", 0.45),
    ):
        assert abs(seen[name] / n - rate) < 0.04, (name, seen[name] / n)
    for name in ("no_zoom", "elsewhere", "guess"):  # guesses are right about one time in four
        assert 0.12 < correct[name] / seen[name] < 0.4
    assert correct["none"] == seen["none"]


def test_description_mode_and_relative_coordinates():
    cfg = ExpertConfig(mode="description", coordinates="relative", refine_rate=0.0)
    for task in TASKS[:8]:
        traj = expert_trajectory(task, random.Random(2), cfg)
        first = parse_turn(traj.turns[0], require_label=False)
        assert first.kind == "tool_call" and first.tool_call.label is None
        assert all(0.0 <= v <= 1.0 for v in first.tool_call.bbox)
        w = task.image.width
        assert first.tool_call.bbox[0] == pytest.approx(traj.boxes[0][0] / w, abs=1e-3)
        later = parse_turn(traj.turns[1], require_label=False, expect_description=True)
        first_target = next(o for o in task.extra["objects"] if o["role"] == "target")
        assert later.description in {describe(first_target, k) for k in range(4)}


def test_bad_configs_and_non_world_tasks_are_refused():
    with pytest.raises(ValueError, match="sum to"):
        ExpertConfig(no_zoom_rate=0.6, guess_rate=0.6)
    with pytest.raises(ValueError, match="jitter"):
        ExpertConfig(jitter=2.0, margin_min=0.5)
    task = TASKS[0]
    bare = type(task)(id="x", image=task.image, question="q", answer="A", options=["a", "b"])
    with pytest.raises(ValueError, match="task x: expert trajectories need a world task"):
        expert_trajectory(bare, random.Random(0))


def test_large_snapped_boxes_still_contain_the_target_and_keep_their_size():
    cfg = ExpertConfig(box_min_side=256, box_grid=32, refine_rate=0.0)
    rng = random.Random(5)
    for task in TASKS:
        traj = expert_trajectory(task, rng, cfg)
        width, height = task.image.size
        for box, hit in zip(traj.boxes, traj.hits):
            assert all(v % 32 == 0 or v in (width, height) for v in box)
            assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
            assert box[2] - box[0] >= 256 and box[3] - box[1] >= 256
            if traj.imperfection in ("none", "guess", "wrong_label"):
                assert hit, (task.id, box)


def test_grid_boxes_have_one_size_few_positions_and_contain_the_target():
    from mapo.data.expert import grid_box

    world = WorldConfig(canvas_width=1024, canvas_height=1024, clutter=16, families=["attribute"],
                        attribute_asks=["pattern"], target_size_min=40, target_size_max=56)
    tasks = generate_tasks(world, "train", n=24)
    cfg = ExpertConfig(box_side=256, refine_rate=0.0, elsewhere_rate=0.2)
    rng = random.Random(3)
    starts = set()
    for task in tasks:
        traj = expert_trajectory(task, rng, cfg)
        for box, hit in zip(traj.boxes, traj.hits):
            assert box[2] - box[0] == 256 and box[3] - box[1] == 256
            if traj.imperfection != "elsewhere":
                assert hit and box == grid_box(task.extra["objects"][0], 256, 1024, 1024)
                assert box[0] % 128 == 0 and box[1] % 128 == 0
                starts.update(box[:2])
    assert starts <= {0.0, 128.0, 256.0, 384.0, 512.0, 640.0, 768.0}
    # the box whose centre is nearest the object's, kept inside the image
    assert grid_box({"box": [100, 900, 140, 940]}, 256, 1024, 1024) == [0.0, 768.0, 256.0, 1024.0]
    assert grid_box({"box": [500, 10, 556, 66]}, 256, 1024, 1024) == [384.0, 0.0, 640.0, 256.0]
    assert grid_box({"box": [0, 0, 10, 10]}, 2048, 1024, 600) == [0.0, 0.0, 1024.0, 600.0]


def test_answer_with_text_puts_the_options_text_in_the_answer_and_scores_the_same():
    from mapo.rewards.choice import extract_choice

    rng_a, rng_b = random.Random(9), random.Random(9)
    for task in TASKS[:12]:
        by_letter = expert_trajectory(task, rng_a, ExpertConfig(no_zoom_rate=0.3, guess_rate=0.3))
        by_text = expert_trajectory(task, rng_b, ExpertConfig(no_zoom_rate=0.3, guess_rate=0.3, answer_with="text"))
        assert by_text.answer == by_letter.answer and by_text.imperfection == by_letter.imperfection
        said = parse_turn(by_text.turns[-1]).answer
        assert said == task.options[LETTERS.index(by_text.answer)]
        assert extract_choice(said, task.options) == by_text.answer  # the scorer maps the text back to its letter


def test_label_first_writes_the_label_before_the_box_and_parses_the_same():
    for task in TASKS[:8]:
        plain = expert_trajectory(task, random.Random(3), ExpertConfig(elsewhere_rate=0.3))
        first = expert_trajectory(task, random.Random(3), ExpertConfig(elsewhere_rate=0.3, label_first=True))
        assert first.boxes == plain.boxes and first.labels == plain.labels and first.answer == plain.answer
        for a, b in zip(plain.turns[:-1], first.turns[:-1]):
            assert '"arguments": {"bbox_2d": [' in a and '"arguments": {"label": "' in b
            assert parse_turn(a).tool_call == parse_turn(b).tool_call
