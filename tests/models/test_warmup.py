"""The text-only LM warm start: the layout it trains on, and that it learns to repeat what the question names."""

from __future__ import annotations

import json
import random

import torch

from mapo.models.warmup import dialogue_ids, warm_up_language_model
from mapo.models.zoo import build_tiny_model, train_tokenizer

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "star"]


def _examples(n: int, seed: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        c, s = rng.choice(COLOURS), rng.choice(SHAPES)
        out.append((f"What digit is on the {c} {s}?", [f"<think>I look for the {c} {s}.</think>",
                                                      "<answer>A</answer>"]))
    return out



def test_dialogue_layout_masks_everything_but_the_assistant_turns():
    tok = train_tokenizer([u + "".join(t) for u, t in _examples(50, 0)], vocab_size=400)
    ids, mask = dialogue_ids(tok, "What is it?", ["<think>a</think>", "<answer>B</answer>"])
    assert len(ids) == len(mask)
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>user\nWhat is it?<|im_end|>\n<|im_start|>assistant\n<think>a</think>")
    assert "<tool_response></tool_response>" in text and text.endswith("<answer>B</answer><|im_end|>")
    learned = tok.decode([i for i, m in zip(ids, mask) if m])
    assert learned == "<think>a</think><answer>B</answer><|im_end|>"


def test_warm_up_teaches_copying_and_writes_the_checkpoint_back(tmp_path):
    train = _examples(400, 1)
    tok = train_tokenizer([u + "".join(t) for u, t in train], vocab_size=400)
    path = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", seed=0)
    before = (path / "model.safetensors").read_bytes()

    def copy_nll(model_dir) -> float:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
        total, n = 0.0, 0
        for user, turns in _examples(24, 99):  # held-out questions
            ids, _ = dialogue_ids(tok, user, turns)
            colour = user.split()[-2]
            pos = tok.decode(ids).index(f"for the {colour}")
            # the token that starts the colour inside the think text
            prefix = next(k for k in range(1, len(ids)) if len(tok.decode(ids[:k])) > pos + len("for the"))
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([ids])).logits[0, prefix - 1].log_softmax(-1)
            total -= float(logp[ids[prefix]])
            n += 1
        return total / n

    summary = warm_up_language_model(path, train, steps=150, batch_size=32, lr=3e-3, progress=False)
    assert (path / "model.safetensors").read_bytes() != before
    assert json.loads((path / "mapo_model.json").read_text())["warmup"]["steps"] == 150
    assert summary["last_loss"] < summary["first_loss"]
    # the colour is one of six: guessing costs log(6) = 1.8 nats; copying from the question costs ~0
    assert copy_nll(path) < 0.5


def test_grounding_warm_up_learns_from_the_image_and_writes_the_checkpoint_back(tmp_path):
    """The image warm-up trains on (image, question, answer): here the answer is the image's colour, which only
    the image tells; after a few steps the model prefers the right answer on images it never saw."""
    from PIL import Image

    from mapo.models.hf_qwen import load_policy
    from mapo.models.warmup import warm_up_grounding

    rgb = {"red": (215, 40, 40), "blue": (40, 80, 215)}

    def example(k: int):
        name = "red" if k % 2 else "blue"
        shade = tuple(min(255, c + (k % 7) * 3) for c in rgb[name])
        return Image.new("RGB", (300, 200), shade), "What colour is the image?", name

    tok = train_tokenizer(["What colour is the image? red blue"] * 20, vocab_size=300)
    path = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", seed=0, image_mean=[0.5, 0.25, 0.5],
                            image_std=[0.3, 0.1, 0.3])
    before = (path / "model.safetensors").read_bytes()
    summary = warm_up_grounding(path, [example(k) for k in range(32)], steps=30, batch_size=8, lr=3e-3,
                                max_pixels=64 * 64, progress=False)
    assert (path / "model.safetensors").read_bytes() != before
    assert json.loads((path / "mapo_model.json").read_text())["grounding"]["steps"] == 30
    assert summary["last_loss"] < summary["first_loss"]

    from mapo.data.images import fit_to_budget
    from mapo.models.warmup import _Example

    backend = load_policy(path)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    right = 0
    for k in range(100, 106):  # held-out shades
        image, question, truth = example(k)
        image = fit_to_budget(image, 64 * 64, factor=backend.image_factor)
        prompt = (f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
                  "<|im_start|>assistant\n")
        scores = {}
        for name in rgb:
            response = tok(name, add_special_tokens=False)["input_ids"] + [eos]
            ex = _Example(torch.tensor(backend.encode(prompt, [image])), torch.tensor(response),
                          torch.ones(len(response), dtype=torch.long), [image])
            with torch.no_grad():
                scores[name] = float(backend.sequence_logprobs([ex])[0].sum())
        right += max(scores, key=scores.get) == truth
    assert right == 6


def test_world_grounding_and_reading_examples(tmp_path):
    from mapo.data.expert import grid_box
    from mapo.data.world import WorldConfig
    from mapo.data.world.export import write_world
    from mapo.models.world_warmup import world_grounding, world_reading

    world = WorldConfig(canvas_width=512, canvas_height=512, clutter=6, families=["attribute", "digit_sum"],
                        attribute_asks=["pattern"], target_size_min=48, target_size_max=56, n_train=8, n_val=1,
                        n_test=1)
    write_world(world, tmp_path / "w")
    where = world_grounding(tmp_path / "w", box_side=256)
    read = world_reading(tmp_path / "w", box_side=256)
    from mapo.data.parquet import load_tasks

    tasks = load_tasks(tmp_path / "w" / "train.parquet")
    assert len(where) == sum(len(t.targets) for t in tasks)  # one per target
    image, question, answer = where[0]
    target = tasks[0].extra["objects"][0]
    assert image.size == (512, 512) and question.startswith("Where is the ") and question.endswith("? Give its zoom box.")
    assert json.loads(answer) == [int(v) for v in grid_box(target, 256, 512, 512)]
    single = [t for t in tasks if len(t.targets) == 1]
    assert len(read) == len(single) > 0  # the two-target sums are left out
    crop, question, answer = read[0]
    assert crop.size == (256, 256) and question.startswith(single[0].question) and "(A) " in question
    assert answer.endswith(f"<answer>{single[0].answer}</answer>") and single[0].answer_text in answer


def test_vision_warm_up_trains_the_tower_alone_and_keeps_the_language_model(tmp_path):
    from PIL import Image
    from safetensors.torch import load_file

    from mapo.models.warmup import warm_up_vision

    tok = train_tokenizer(["What colour is the image? red blue"] * 20, vocab_size=300)
    path = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", seed=0, image_mean=[0.5, 0.25, 0.5],
                            image_std=[0.3, 0.1, 0.3])
    before = load_file(path / "model.safetensors")
    colours = [(215, 40, 40), (40, 80, 215), (40, 150, 60)]
    examples = [(Image.new("RGB", (96, 64), colours[k % 3]), {"colour": k % 3}) for k in range(24)]
    held_out = [(Image.new("RGB", (80, 80), tuple(c + 9 for c in colours[k % 3])), {"colour": k % 3})
                for k in range(6)]
    summary = warm_up_vision(path, examples, {"colour": 3, "unused": 2}, steps=25, batch_size=8, lr=3e-3,
                             max_pixels=64 * 64, held_out=held_out, progress=False)
    after = load_file(path / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("visual" in k for k in changed)  # the tower only: the language model is untouched
    assert summary["train_accuracy_last_10"]["colour"] == 1.0 and "unused" not in summary["train_accuracy_last_10"]
    assert summary["held_out_accuracy"] == {"colour": 1.0}  # other shades and sizes than it trained on
    assert json.loads((path / "mapo_model.json").read_text())["vision_warmup"]["steps"] == 25


def test_grounding_without_grid_boxes_is_refused_with_the_fix(tmp_path):
    import pytest

    from mapo.data.expert import ExpertConfig
    from mapo.models.world_warmup import warm_up_for_world

    with pytest.raises(ValueError, match="box_side"):
        warm_up_for_world(tmp_path / "m", tmp_path / "w", lm_steps=0, grounding_steps=10, expert=ExpertConfig())


def test_grounding_warm_up_with_a_frozen_tower_leaves_the_tower_as_it_was(tmp_path):
    from PIL import Image
    from safetensors.torch import load_file

    from mapo.models.warmup import warm_up_grounding

    tok = train_tokenizer(["What colour is the image? red blue"] * 20, vocab_size=300)
    path = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", seed=0)
    before = load_file(path / "model.safetensors")
    examples = [(Image.new("RGB", (64, 64), (200, 40 * k, 40)), "What colour is the image?", "red") for k in range(4)]
    summary = warm_up_grounding(path, examples, steps=3, batch_size=2, max_pixels=64 * 64,
                                freeze_vision_tower=True, progress=False)
    after = load_file(path / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert summary["frozen_vision_tower"] is True
    assert any("merger" in k for k in changed) and any("language_model" in k for k in changed)
    assert not any("visual" in k and "merger" not in k for k in changed)  # patch embedding and blocks as they were


def test_world_grounding_flips_mirror_the_image_and_the_box(tmp_path):
    from PIL import Image, ImageChops

    from mapo.data.expert import grid_box
    from mapo.data.images import fit_to_budget
    from mapo.data.parquet import load_tasks
    from mapo.data.world import WorldConfig
    from mapo.data.world.export import write_world
    from mapo.models.world_warmup import world_grounding

    world = WorldConfig(canvas_width=512, canvas_height=512, clutter=4, families=["attribute"], n_train=3, n_val=1,
                        n_test=1, target_size_min=40, target_size_max=48)
    write_world(world, tmp_path / "w")
    tasks = load_tasks(tmp_path / "w" / "train.parquet")
    plain = world_grounding(tmp_path / "w", box_side=256, tasks=tasks)
    flipped = world_grounding(tmp_path / "w", box_side=256, tasks=tasks, flips=True, max_pixels=128 * 128, factor=32)
    assert len(flipped) == 4 * len(plain) == 12
    target = tasks[0].extra["objects"][0]
    x1, y1, x2, y2 = target["box"]
    small = fit_to_budget(tasks[0].image, 128 * 128, factor=32)
    for k, (mirror, box) in enumerate([(None, [x1, y1, x2, y2]), (Image.Transpose.FLIP_LEFT_RIGHT, [512 - x2, y1, 512 - x1, y2]),
                                       (Image.Transpose.FLIP_TOP_BOTTOM, [x1, 512 - y2, x2, 512 - y1])]):
        image, question, answer = flipped[k]
        assert question == plain[0][1] and image.size == (128, 128)
        expected = small if mirror is None else small.transpose(mirror)
        assert ImageChops.difference(image, expected).getbbox() is None
        assert json.loads(answer) == [int(v) for v in grid_box({**target, "box": box}, 256, 512, 512)]
    assert {a for _, _, a in flipped[:4]} != {plain[0][2]}  # a mirrored target sits elsewhere on the grid


def test_grounding_hit_rate_counts_boxes_covering_half_the_target_and_nothing_else(tmp_path):
    from PIL import Image

    from mapo.models.hf_qwen import load_policy
    from mapo.models.scripted import ScriptedBackend
    from mapo.models.warmup import _grounding_hit_rate

    tok = train_tokenizer(["Where is the red circle? Give its zoom box. [0, 0, 64, 64] not a box"] * 20,
                          vocab_size=300)
    replies = iter(["[0, 0, 64, 64]<|im_end|>", "[0, 0, 64, 64]", "not a box", "[0, 0, 64, 64, 5]"])
    backend = ScriptedBackend(like=load_policy(build_tiny_model(tmp_path / "m", tok, family="qwen3_vl")),
                              script=lambda ctx: next(replies))
    image = Image.new("RGB", (128, 128))
    targets = ([10, 10, 30, 30], [40, 40, 100, 100], [0, 0, 8, 8], [0, 0, 8, 8])  # inside, 16% inside, -, -
    checks = [(image, "Where is the red circle? Give its zoom box.", box) for box in targets]
    assert _grounding_hit_rate(backend, checks, 64 * 64) == 0.25


def test_lm_and_vision_warm_ups_commute_so_the_demo_runs_them_at_once(tmp_path):
    """The demo trains the vision tower on a copy beside the LM warm-up and adopts the copy's tower: the weights
    are those of running the two in turn, tensor for tensor."""
    import shutil

    from PIL import Image
    from safetensors.torch import load_file

    from mapo.models.warmup import adopt_vision_tower, warm_up_vision

    train = _examples(40, 1)
    tok = train_tokenizer([u + "".join(t) for u, t in train], vocab_size=400)
    colours = [(215, 40, 40), (40, 80, 215), (40, 150, 60)]
    views = [(Image.new("RGB", (64, 64), colours[k % 3]), {"colour": k % 3}) for k in range(12)]
    in_turn = build_tiny_model(tmp_path / "in_turn", tok, family="qwen3_vl", seed=0)
    joined = tmp_path / "joined"
    shutil.copytree(in_turn, joined)
    shutil.copytree(in_turn, tmp_path / "tower")
    initial = load_file(in_turn / "model.safetensors")

    warm_up_language_model(in_turn, train, steps=3, batch_size=8, progress=False)
    lm_only = load_file(in_turn / "model.safetensors")
    assert all(torch.equal(initial[k], lm_only[k]) for k in initial if "visual" in k)  # text never reaches the tower
    warm_up_vision(in_turn, views, {"colour": 3}, steps=3, batch_size=4, max_pixels=64 * 64, progress=False)

    warm_up_vision(tmp_path / "tower", views, {"colour": 3}, steps=3, batch_size=4, max_pixels=64 * 64,
                   progress=False)
    warm_up_language_model(joined, train, steps=3, batch_size=8, progress=False)
    assert adopt_vision_tower(joined, tmp_path / "tower") > 0

    a, b = load_file(in_turn / "model.safetensors"), load_file(joined / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(initial[k], a[k]) for k in a if "visual" in k)  # the tower did train
    meta = json.loads((joined / "mapo_model.json").read_text())
    assert meta["vision_warmup"]["steps"] == 3 and meta["warmup"]["steps"] == 3


def test_adopting_a_tower_from_another_architecture_is_refused(tmp_path):
    import pytest

    from mapo.models.warmup import adopt_vision_tower

    tok = train_tokenizer(["What colour is the image? red blue"] * 20, vocab_size=300)
    a = build_tiny_model(tmp_path / "a", tok, family="qwen3_vl", seed=0)
    b = build_tiny_model(tmp_path / "b", tok, family="qwen2_vl", seed=0)
    before = (a / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="vision tower"):
        adopt_vision_tower(a, b)
    assert (a / "model.safetensors").read_bytes() == before


def _grounding_toy(tmp_path):
    from PIL import Image

    tok = train_tokenizer(["What colour is the image? red blue [0, 0, 32, 32]"] * 20, vocab_size=300)
    path = build_tiny_model(tmp_path / "m", tok, family="qwen3_vl", seed=0)
    examples = [(Image.new("RGB", (64, 64), (200, 40 * k, 40)), "Where is it?", "[0, 0, 32, 32]") for k in range(4)]
    held_out = [(Image.new("RGB", (64, 64), (200, 30, 40)), "Where is it?", [0, 0, 64, 64])]  # never covered
    return path, examples, held_out


def test_grounding_trains_on_to_its_cap_while_the_held_out_bar_is_not_reached(tmp_path):
    from mapo.models.warmup import warm_up_grounding

    path, examples, held_out = _grounding_toy(tmp_path)
    called: list[int] = []
    summary = warm_up_grounding(path, examples, steps=2, batch_size=2, max_pixels=64 * 64, held_out=held_out,
                                target_hit_rate=0.5, max_steps=6, check_every=2, progress=False,
                                on_step=called.append)
    assert summary["steps"] == 6 and called == [1, 2, 3, 4, 5, 6]  # the demo's hook runs before every step
    assert [step for step, _ in summary["held_out_curve"]] == [2, 4, 6]
    assert summary["held_out_hit_rate"] == 0.0 and summary["target_hit_rate"] == 0.5


def test_grounding_that_reaches_its_bar_stops_and_is_the_run_without_one(tmp_path):
    import shutil

    from safetensors.torch import load_file

    from mapo.models.warmup import warm_up_grounding

    path, examples, held_out = _grounding_toy(tmp_path)
    plain = tmp_path / "plain"
    shutil.copytree(path, plain)
    summary = warm_up_grounding(path, examples, steps=3, batch_size=2, max_pixels=64 * 64, held_out=held_out,
                                target_hit_rate=0.0, max_steps=9, check_every=2, progress=False)
    assert summary["steps"] == 3 and summary["held_out_curve"] == [[3, 0.0]]
    warm_up_grounding(plain, examples, steps=3, batch_size=2, max_pixels=64 * 64, progress=False)
    a, b = load_file(path / "model.safetensors"), load_file(plain / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_world_grounding_shifts_roll_the_scene_and_move_the_box_with_the_target(tmp_path):
    import numpy as np

    from mapo.data.parquet import load_tasks
    from mapo.data.world import WorldConfig
    from mapo.data.world.export import write_world
    from mapo.models.world_warmup import world_grounding

    world = WorldConfig(canvas_width=512, canvas_height=512, clutter=6, families=["attribute"],
                        attribute_asks=["pattern"], target_size_min=48, target_size_max=56, n_train=4, n_val=1,
                        n_test=1)
    write_world(world, tmp_path / "w")
    tasks = load_tasks(tmp_path / "w" / "train.parquet")
    plain = world_grounding(tmp_path / "w", box_side=256, tasks=tasks)
    shifted = world_grounding(tmp_path / "w", box_side=256, tasks=tasks, shifts=2, seed=3)
    assert len(shifted) == 3 * len(plain)
    assert [a for _, _, a in shifted[0::3]] == [a for _, _, a in plain]  # the unshifted scene comes first
    moved_some = False
    for k, (image, question, answer) in enumerate(shifted):
        base, obj = tasks[k // 3].image, tasks[k // 3].extra["objects"][0]
        assert obj["role"] == "target" and question == plain[k // 3][1]
        pixels = np.asarray(image)
        x1, y1, x2, y2 = obj["box"]
        match = [(dx, dy) for dx in range(-512, 513, 128) for dy in range(-512, 513, 128)
                 if np.array_equal(pixels, np.roll(np.asarray(base), (dy, dx), axis=(0, 1)))
                 and 0 <= x1 + dx and x2 + dx <= 512 and 0 <= y1 + dy and y2 + dy <= 512]
        assert match, k  # a whole number of grid strides, wrapped around, the target whole
        dx, dy = match[0]
        box = json.loads(answer)
        centre = ((x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy)
        assert box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]  # the box is where the target went
        moved_some |= (dx, dy) != (0, 0)
    assert moved_some


def test_agent_grounding_asks_in_the_agent_prompt_and_answers_with_the_clean_first_turn(tmp_path):
    from mapo.agent.parser import parse_turn
    from mapo.agent.protocol import ProtocolConfig, prompt_messages
    from mapo.data.expert import ExpertConfig, grid_box
    from mapo.data.parquet import load_tasks
    from mapo.data.world import WorldConfig
    from mapo.data.world.export import write_world
    from mapo.models.world_warmup import agent_grounding, world_grounding_checks

    world = WorldConfig(canvas_width=512, canvas_height=512, clutter=4, families=["attribute"], n_train=3, n_val=1,
                        n_test=1, target_size_min=40, target_size_max=48)
    write_world(world, tmp_path / "w")
    tasks = load_tasks(tmp_path / "w" / "train.parquet")
    protocol = ProtocolConfig(tools_prompt="compact")
    # the SFT expert's imperfections are left out: every first turn zooms on the target
    expert = ExpertConfig(box_side=256, elsewhere_rate=0.5, no_zoom_rate=0.5)
    examples = agent_grounding(tasks, protocol, expert, flips=True, max_pixels=128 * 128, factor=32)
    assert len(examples) == 4 * len(tasks)
    target = tasks[0].extra["objects"][0]
    x1, y1, x2, y2 = target["box"]
    for k, box in enumerate([[x1, y1, x2, y2], [512 - x2, y1, 512 - x1, y2], [x1, 512 - y2, x2, 512 - y1]]):
        image, prompt, turn = examples[k]
        assert image.size == (128, 128)
        assert prompt == prompt_messages(tasks[0].question, tasks[0].options_block(), 512, 512, protocol)
        call = parse_turn(turn).tool_call
        assert call is not None and call.bbox == [int(v) for v in grid_box({**target, "box": box}, 256, 512, 512)]
    # the held-out checks ask the same prompt and score the first target's box
    checks = world_grounding_checks(tasks, protocol)
    assert len(checks) == len(tasks) and checks[0][1] == examples[0][1] and checks[0][2] == list(target["box"])


def test_answer_box_reads_a_bare_box_or_a_zoom_call_and_nothing_else():
    from mapo.data.task import Box
    from mapo.models.warmup import answer_box

    call = '<think>It is small.</think>\n<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 256, 256, 512], "label": "a red square"}}'
    assert answer_box("[0, 0, 64, 64]<|im_end|>", 100, 100) == Box(0, 0, 64, 64)
    assert answer_box(call, 1024, 1024) == Box(0, 256, 256, 512)  # generation stopped at </tool_call>, cut off
    assert answer_box(call + "</tool_call>", 1024, 1024) == Box(0, 256, 256, 512)
    relative = call.replace("[0, 256, 256, 512]", "[0.0, 0.25, 0.25, 0.5]")
    assert answer_box(relative, 1024, 1024) == Box(0, 256, 256, 512)  # fractions of the image
    for text in ("not a box", "[0, 0, 64]", "<think>x</think>\n<answer>A</answer>"):
        assert answer_box(text, 100, 100) is None


def test_the_warm_up_loop_decays_weights_only_when_asked():
    """``_fit(weight_decay=...)`` reaches AdamW: with a zero-gradient loss, 0 leaves the weights, > 0 shrinks them."""
    import torch

    from mapo.models.warmup import _fit

    for decay, moved in ((0.0, False), (1.0, True)):
        layer = torch.nn.Linear(3, 2)
        before = layer.weight.detach().clone()
        _fit(layer, list(layer.parameters()), 4, lambda idx, layer=layer: (layer.weight * 0).sum(), steps=3, batch_size=2,
             lr=0.1, warmup_steps=0, seed=0, desc="t", progress=False, weight_decay=decay)
        assert bool((layer.weight.abs() < before.abs()).all()) is moved
        if not moved:
            assert torch.equal(layer.weight, before)


def test_a_restarted_grounding_run_is_recorded_beside_the_first_one(tmp_path):
    """The demo's grounding_restart_steps: a second call with a fresh optimizer, recorded under its own key, so
    the first run's record (its curve, its race) is kept."""
    import json

    from mapo.models.warmup import warm_up_grounding

    path, examples, held_out = _grounding_toy(tmp_path)
    first = warm_up_grounding(path, examples, steps=2, batch_size=2, max_pixels=64 * 64, held_out=held_out,
                              progress=False)
    again = warm_up_grounding(path, examples, steps=3, batch_size=2, max_pixels=64 * 64, held_out=held_out,
                              progress=False, record_as="grounding_restart")
    meta = json.loads((path / "mapo_model.json").read_text())
    assert meta["grounding"]["steps"] == first["steps"] == 2
    assert meta["grounding_restart"]["steps"] == again["steps"] == 3
    assert meta["grounding_restart"]["held_out_curve"] == [[3, again["held_out_hit_rate"]]]
