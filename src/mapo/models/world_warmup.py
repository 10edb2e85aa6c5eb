"""The tiny model's warm-up data on the embedded world, and the warm-ups run on it in order.

Builders turn a world directory (made by `mapo world make`) into the examples `mapo.models.warmup` trains on:
the text a model of the world reads and writes (tokenizer corpus, LM warm-up dialogues), labelled zooms
(vision warm-up), grounding questions and reading examples (image warm-up), plus the pixel statistics of the
views an agent sees. `mapo model init` and `mapo demo` both call :func:`warm_up_for_world`.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

from PIL import Image

from mapo.agent.protocol import ProtocolConfig, prompt_messages, user_text
from mapo.data.expert import ExpertConfig, expert_trajectory, expert_turns, grid_box
from mapo.data.images import fit_to_budget
from mapo.data.parquet import load_tasks
from mapo.data.world.captions import describe
from mapo.data.world.render import COLOURS, GLYPHS, PATTERNS, SHAPES
from mapo.models.grounding_race import RaceBoard
from mapo.models.image_stats import agent_views, view_statistics
from mapo.models.warmup import warm_up_grounding, warm_up_language_model, warm_up_vision


def world_texts(world: Path, max_tasks: int = 600, seed: int = 0, tasks=None) -> list[str]:
    """The text a model of the world will read and write: questions, options, prompts, expert turns.

    Expert turns are written in every protocol mode (label / description, pixel / relative boxes) and with
    every imperfection, so the tokenizer covers whatever SFT or RL will show the model. Held-out caption
    templates stay out (the verifier's unseen wordings). ``tasks``: the train tasks if already decoded."""
    tasks = tasks[:max_tasks] if tasks is not None else load_tasks(train_split(world), limit=max_tasks)
    rng = random.Random(seed)
    experts = [
        ExpertConfig(
            refine_rate=0.5, no_zoom_rate=0.1, elsewhere_rate=0.1, wrong_label_rate=0.1, guess_rate=0.1
        ),
        ExpertConfig(mode="description", coordinates="relative", elsewhere_rate=0.1),
    ]
    texts: list[str] = []
    for task in tasks:
        for coords in ("pixel", "relative"):
            texts.append(
                user_text(
                    task.question,
                    task.options_block(),
                    task.image.width,
                    task.image.height,
                    ProtocolConfig(coordinates=coords),
                )
            )
        for cfg in experts:
            texts.extend(expert_turns(task, rng, cfg))
    return texts


def world_dialogues(world: Path, max_tasks: int = 600, seed: int = 0,
                    expert=None, tasks=None) -> list[tuple[str, list[str]]]:
    """(user text, expert assistant turns) of the world's train tasks — the text-only warm-up's examples.

    Label mode with pixel boxes (``expert``, an ``ExpertConfig``: pass the SFT's own so the warm-up writes the
    same kind of boxes; default: the demo's imperfection rates with jittered boxes) and description mode with
    relative boxes, each user text written for its coordinate system. ``tasks``: the train tasks if already
    decoded."""
    tasks = tasks[:max_tasks] if tasks is not None else load_tasks(train_split(world), limit=max_tasks)
    rng = random.Random(seed + 1)
    experts = [expert or ExpertConfig(no_zoom_rate=0.1, elsewhere_rate=0.15, wrong_label_rate=0.1, guess_rate=0.1),
               ExpertConfig(mode="description", coordinates="relative", elsewhere_rate=0.1)]
    out: list[tuple[str, list[str]]] = []
    for task in tasks:
        for cfg in experts:
            user = user_text(task.question, task.options_block(), task.image.width, task.image.height,
                             ProtocolConfig(coordinates=cfg.coordinates))
            out.append((user, expert_turns(task, rng, cfg)))
    return out


def world_grounding(world: Path, box_side: int = 256, max_tasks: int = 600, tasks=None, flips: bool = False,
                    max_pixels: int | None = None, factor: int = 28, shifts: int = 0,
                    seed: int = 0) -> list[tuple[object, str, str]]:
    """(image, question, answer) grounding examples of the world's train tasks for ``warm_up_grounding``: "Where
    is the red square?" -> the expert's zoom box around it, ``[x1, y1, x2, y2]`` (``grid_box`` with
    ``box_side``), one per target. ``flips``: each image also mirrored left-right, top-bottom and both, with the
    box of the mirrored target (4x the examples; the question names colour and shape, which mirroring keeps).
    ``shifts``: each of those also that many times rolled (wrapped around) by a random whole number of grid
    strides along each axis, the target kept whole, with the box of the moved target: the same scene at other
    places, so a box cannot be recalled from the clutter around it ((1 + shifts)x the examples).
    ``max_pixels``: images are returned fitted to that budget on the model's grid ``factor`` (``fit_to_budget``),
    as ``warm_up_grounding`` would fit them, which keeps the copies small."""
    rng = random.Random(seed)
    out: list[tuple[object, str, str]] = []
    for task in tasks if tasks is not None else load_tasks(train_split(world), limit=max_tasks):
        known = _known(task)
        width, height = task.image.size
        image = fit_to_budget(task.image, max_pixels, factor=factor) if max_pixels else task.image
        for obj in task.extra.get("objects", []):
            if obj.get("role") != "target":
                continue
            question = where_question(obj, known)
            for mirror_x, mirror_y in _mirrors(flips):
                view = _mirror_image(image, mirror_x, mirror_y)
                x1, y1, x2, y2 = _mirror_box(obj["box"], mirror_x, mirror_y, width, height)
                for dx, dy in [(0, 0)] + [_shift(rng, (x1, y1, x2, y2), box_side // 2, width, height)
                                          for _ in range(shifts)]:
                    moved = view if not (dx or dy) else _roll(view, round(dx * view.width / width),
                                                              round(dy * view.height / height))
                    box = grid_box({**obj, "box": [x1 + dx, y1 + dy, x2 + dx, y2 + dy]}, box_side, width, height)
                    out.append((moved, question, json.dumps([int(v) for v in box])))
    return out


def agent_grounding(tasks, protocol: ProtocolConfig, expert: ExpertConfig, *, flips: bool = False,
                    max_pixels: int | None = None, factor: int = 28, seed: int = 0) -> list[tuple[object, list, str]]:
    """(image, the agent's prompt, the expert's first turn) grounding examples for ``warm_up_grounding``: the
    question as the agent is asked it (``prompt_messages``: system prompt with the tool, the image, the question
    and its options) and the clean expert's first turn, its zoom on the (first) target (``expert``'s box side,
    mode and coordinates, every imperfection rate 0). ``flips``: each image also mirrored left-right, top-bottom
    and both, the zoom moved with the target (4x the examples). ``max_pixels``: images are returned fitted to
    that budget on ``factor`` (small copies).

    Why the agent's own prompt: a box learnt after "Where is the red square?" reached the agent's first turn on
    some seeds only. On a seed where it did not, the where-question hit rate rose to 0.88 through SFT while the
    agent's zooms hit 0.18 (docs/results.md section 13)."""
    clean = expert.model_copy(update={"no_zoom_rate": 0.0, "elsewhere_rate": 0.0, "wrong_label_rate": 0.0,
                                      "guess_rate": 0.0, "refine_rate": 0.0})
    rng = random.Random(seed)
    out: list[tuple[object, list, str]] = []
    for task in tasks:
        if not any(o.get("role") == "target" for o in task.extra.get("objects", [])):
            continue
        width, height = task.image.size
        prompt = prompt_messages(task.question, task.options_block(), width, height, protocol)
        image = fit_to_budget(task.image, max_pixels, factor=factor) if max_pixels else task.image
        for mirror_x, mirror_y in _mirrors(flips):
            # the expert reads only the objects' boxes and the image's size: the task keeps its own image
            objects = [{**o, "box": _mirror_box(o["box"], mirror_x, mirror_y, width, height)}
                       for o in task.extra.get("objects", [])]
            mirrored = replace(task, extra={**task.extra, "objects": objects})
            out.append((_mirror_image(image, mirror_x, mirror_y), prompt,
                        expert_trajectory(mirrored, rng, clean).turns[0]))
    return out


def _mirrors(flips: bool) -> tuple[tuple[bool, bool], ...]:
    """(mirror left-right, mirror top-bottom) of each copy: the image alone, or it and its three mirrors."""
    return ((False, False), (True, False), (False, True), (True, True))[: 4 if flips else 1]


def _mirror_image(image, mirror_x: bool, mirror_y: bool):
    view = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirror_x else image
    return view.transpose(Image.Transpose.FLIP_TOP_BOTTOM) if mirror_y else view


def _mirror_box(box, mirror_x: bool, mirror_y: bool, width: int, height: int) -> list:
    """``box`` (pixels of a ``width`` x ``height`` image) where the mirrored image has it."""
    x1, y1, x2, y2 = box
    x1, x2 = (width - x2, width - x1) if mirror_x else (x1, x2)
    y1, y2 = (height - y2, height - y1) if mirror_y else (y1, y2)
    return [x1, y1, x2, y2]


def _shift(rng: random.Random, box, stride: int, width: int, height: int) -> tuple[int, int]:
    """A random (dx, dy), each a whole number of ``stride``, that keeps ``box`` inside the image (not wrapped)."""
    x1, y1, x2, y2 = box

    def fits(lo: float, hi: float, limit: int) -> list[int]:
        return [k * stride for k in range(-(limit // stride), limit // stride + 1)
                if 0 <= lo + k * stride and hi + k * stride <= limit]

    return rng.choice(fits(x1, x2, width)), rng.choice(fits(y1, y2, height))


def _roll(image, dx: int, dy: int):
    """``image`` shifted by (dx, dy) pixels, what leaves one edge coming back at the other."""
    import numpy as np

    return Image.fromarray(np.roll(np.asarray(image), (dy, dx), axis=(0, 1)))


def where_question(obj: dict, known: tuple[str, ...] = ("colour", "shape")) -> str:
    """The grounding question about a world object, naming what the task tells about it."""
    return f"Where is {describe(obj, 0, known)}? Give its zoom box."


def world_grounding_checks(tasks, protocol: ProtocolConfig | None = None) -> list[tuple[object, object, list[float]]]:
    """(image, grounding question, the target's own box) for every target of ``tasks``: held-out checks of
    the grounding warm-up (``warm_up_grounding(held_out=...)``). With ``protocol``: the agent's prompt of each
    task instead (``agent_grounding``), checked against its first target."""
    if protocol is not None:
        return [(task.image, prompt_messages(task.question, task.options_block(), *task.image.size, protocol),
                 list(targets[0]["box"])) for task in tasks
                if (targets := [o for o in task.extra.get("objects", []) if o.get("role") == "target"])]
    return [(task.image, where_question(obj, _known(task)), list(obj["box"]))
            for task in tasks for obj in task.extra.get("objects", []) if obj.get("role") == "target"]


def _known(task) -> tuple[str, ...]:
    """What the task's question tells about its targets (the attributes a grounding question may name)."""
    return tuple(task.extra.get("query", {}).get("known") or ("colour", "shape"))


def world_reading(world: Path, box_side: int = 256, max_tasks: int = 600, seed: int = 0,
                  answer_with: str = "letter", tasks=None) -> list[tuple[object, str, str]]:
    """(zoom, question, answer) reading examples for ``warm_up_grounding``: the crop a clean expert's zoom shows
    (``grid_box`` with ``box_side`` around the target), the task's question with its options, and the expert's
    final turn (what the crop shows, the option's text, its letter). Single-target questions only (the relation
    and sum families need two zooms)."""
    clean = ExpertConfig(box_side=box_side, refine_rate=0.0, answer_with=answer_with)
    rng = random.Random(seed)
    out: list[tuple[object, str, str]] = []
    for task in tasks if tasks is not None else load_tasks(train_split(world), limit=max_tasks):
        if sum(o.get("role") == "target" for o in task.extra.get("objects", [])) != 1:
            continue
        traj = expert_trajectory(task, rng, clean)
        crop = task.image.crop(tuple(int(v) for v in traj.boxes[-1]))
        out.append((crop, f"{task.question}\n{task.options_block()}", traj.turns[-1]))
    return out


def world_views(world: Path, box_side: int = 256, max_tasks: int = 600,
                tasks=None) -> tuple[list[tuple[object, dict]], dict]:
    """Labelled zoom views for ``warm_up_vision``: for each target of the world's train tasks, the expert's grid
    zoom around it (``grid_box``) labelled with what the zoom is there to read — the asked attribute (digit,
    pattern, colour or shape; the digit for the relation and sum families). Only that: labelled with colour and
    shape as well, the tiny tower fitted colour at once and the pattern hardly (train accuracy 0.36 after 300
    steps, against 1.0 with the pattern alone). ``tasks``: the train tasks if already loaded. Returns (examples,
    classes)."""
    values = {"colour": tuple(COLOURS), "shape": SHAPES, "glyph": GLYPHS, "pattern": PATTERNS}
    out: list[tuple[object, dict]] = []
    for task in tasks if tasks is not None else load_tasks(train_split(world), limit=max_tasks):
        ask = task.extra.get("query", {}).get("ask")
        attribute = ask if ask in values else "glyph"
        for obj in task.extra.get("objects", []):
            if obj.get("role") != "target" or obj.get(attribute) is None:
                continue
            box = grid_box(obj, box_side, *task.image.size)
            label = {attribute: values[attribute].index(obj[attribute])}
            out.append((task.image.crop(tuple(int(v) for v in box)), label))
    classes = {a: len(v) for a, v in values.items() if any(a in lab for _, lab in out)}
    return out, classes


def warm_up_for_world(model_dir: Path, world: Path, *, lm_steps: int = 300, vision_steps: int = 0,
                      grounding_steps: int = 0, expert=None, max_pixels: int = 224 * 224, seed: int = 0,
                      freeze_vision_tower: bool = False, grounding_flips: bool = False,
                      grounding_target: float | None = None, grounding_max_steps: int | None = None,
                      grounding_shifts: int = 0, grounding_protocol: ProtocolConfig | None = None) -> dict:
    """The tiny model's warm starts on the world, in order (each skipped at 0 steps): the text-only LM warm-up
    on the expert's dialogues, the vision tower alone on labelled zooms, then grounding and reading on images.
    ``expert``: the SFT's ``ExpertConfig`` (its boxes and answers are what the warm-ups teach; grounding needs
    its ``box_side``). ``freeze_vision_tower``: grounding keeps the tower the vision warm-up trained fixed.
    ``grounding_flips`` / ``grounding_shifts``: the grounding questions also on mirrored and on rolled images
    (``world_grounding``).
    ``grounding_target`` / ``grounding_max_steps``: grounding goes on past ``grounding_steps`` until its
    held-out hit rate reaches the target, up to the cap (``warm_up_grounding``). ``grounding_protocol``: ask
    the grounding questions in the agent's own prompt and first turn under that protocol (``agent_grounding``)
    instead of alone. Returns each stage's summary.

    The LM and vision warm-ups train disjoint parameters (text-only batches never reach the tower; the vision
    warm-up trains the tower and its merger alone), so they commute: ``mapo demo`` runs them at once in two
    processes (:func:`lm_warm_up`, :func:`vision_warm_up`, then ``adopt_vision_tower``) with the same result."""
    if grounding_steps:  # checked before the LM warm-up's minutes, not after
        _box_side(expert)
        val = Path(world) / "val.parquet"
        if grounding_target is not None and not val.is_file():
            raise ValueError(f"grounding_target needs the world's val split to measure the hit rate on, and {val} "
                             "is missing: make the world with n_val > 0, or drop the target")
    done: dict = {}
    if lm_steps:
        done["lm"] = lm_warm_up(model_dir, world, steps=lm_steps, expert=expert, seed=seed)
    tasks = load_tasks(train_split(world), limit=600) if vision_steps and grounding_steps else None  # decoded once
    if vision_steps:
        done["vision"] = vision_warm_up(model_dir, world, steps=vision_steps, expert=expert, max_pixels=max_pixels,
                                        seed=seed, tasks=tasks)
    if grounding_steps:
        done["grounding"] = grounding_warm_up(model_dir, world, steps=grounding_steps, expert=expert,
                                              max_pixels=max_pixels, seed=seed, tasks=tasks,
                                              freeze_vision_tower=freeze_vision_tower, flips=grounding_flips,
                                              target_hit_rate=grounding_target, max_steps=grounding_max_steps,
                                              shifts=grounding_shifts, protocol=grounding_protocol)
    return done


def lm_warm_up(model_dir: Path, world: Path, *, steps: int, expert=None, seed: int = 0, tasks=None) -> dict:
    """The text-only LM warm-up on the world's expert dialogues (``world_dialogues``; no ``expert``: its own,
    jittered boxes at the demo's imperfection rates). ``tasks``: the train tasks if already decoded."""
    return warm_up_language_model(model_dir, world_dialogues(world, seed=seed, expert=expert, tasks=tasks),
                                  steps=steps, seed=seed)


def _val_tasks(world: Path) -> list:
    """The val split, measured only and never trained on: whether a warm-up learnt the skill or its examples."""
    return load_tasks(world / "val.parquet", limit=100) if (world / "val.parquet").is_file() else []


def vision_warm_up(model_dir: Path, world: Path, *, steps: int, expert=None, max_pixels: int = 224 * 224,
                   seed: int = 0, tasks=None) -> dict:
    """The vision tower alone on the expert's labelled zooms (``world_views``), checked on the val split's.
    ``tasks``: the train tasks if already decoded."""
    box_side = (expert or ExpertConfig()).box_side or 256
    tasks = tasks if tasks is not None else load_tasks(train_split(world), limit=600)
    views, classes = world_views(world, box_side=box_side, tasks=tasks)
    val = _val_tasks(world)
    held_out = world_views(world, box_side=box_side, tasks=val)[0] if val else []
    return warm_up_vision(model_dir, views, classes, steps=steps, seed=seed, max_pixels=max_pixels, held_out=held_out)


def grounding_examples(model_dir: Path, world: Path, *, expert=None, max_pixels: int = 224 * 224, seed: int = 0,
                       tasks=None, flips: bool = False, shifts: int = 0,
                       protocol: ProtocolConfig | None = None) -> list[tuple[object, object, str]]:
    """The grounding warm-up's examples: ``world_grounding`` (on the model's image grid), or with ``protocol``
    ``agent_grounding`` (the agent's own prompt and first turn), + ``world_reading``. With ``flips`` or
    ``shifts`` they hold small copies of the images, not ``tasks``' own."""
    expert = expert or ExpertConfig()
    _box_side(expert)
    if protocol is not None and shifts:
        raise ValueError("grounding in the agent's prompt takes no shifted copies (grounding_shifts); set "
                         "grounding_shifts: 0 or ask the grounding questions alone (grounding_prompt: where)")
    tasks = tasks if tasks is not None else load_tasks(train_split(world), limit=600)
    processor = json.loads((Path(model_dir) / "preprocessor_config.json").read_text())
    factor = processor["patch_size"] * processor["merge_size"]
    small = max_pixels if flips or shifts else None  # small copies
    if protocol is not None:
        boxes = agent_grounding(tasks, protocol, expert, flips=flips, max_pixels=small, factor=factor, seed=seed)
    else:
        boxes = world_grounding(world, box_side=expert.box_side, tasks=tasks, flips=flips, shifts=shifts, seed=seed,
                                max_pixels=small, factor=factor)
    return boxes + world_reading(world, box_side=expert.box_side, seed=seed, answer_with=expert.answer_with,
                                 tasks=tasks)


def grounding_warm_up(model_dir: Path, world: Path, *, steps: int, expert=None, max_pixels: int = 224 * 224,
                      seed: int = 0, tasks=None, freeze_vision_tower: bool = False, flips: bool = False,
                      target_hit_rate: float | None = None, max_steps: int | None = None, shifts: int = 0,
                      examples=None, on_step=None, protocol: ProtocolConfig | None = None,
                      order_seed: int | None = None, race: RaceBoard | None = None, peers_alive=None,
                      record_as: str = "grounding") -> dict:
    """Grounding and reading on images (``grounding_examples``, or ``examples`` if already built), its hit rate
    checked on the val split's targets (asked in the agent's prompt with ``protocol``). ``tasks``: the train
    tasks if already decoded. ``on_step(n)``: called before step n. ``order_seed``: the seed of the batches'
    order (default ``seed``, which also draws the examples). ``race``/``peers_alive``: this run is one of several
    racing (``warm_up_grounding``); a run that fails is marked so on the board, so its peers stop waiting.
    ``record_as``: the key of its record in ``mapo_model.json``."""
    if race is not None and (won := race.winner()) is not None:  # decided before this run began: nothing to do
        return {"race": {"run": race.run, "runs": race.runs, "won": won == race.run, "winner": won}}
    try:
        if examples is None:
            examples = grounding_examples(model_dir, world, expert=expert, max_pixels=max_pixels, seed=seed,
                                          tasks=tasks, flips=flips, shifts=shifts, protocol=protocol)
        return warm_up_grounding(model_dir, examples, steps=steps, seed=seed if order_seed is None else order_seed,
                                 max_pixels=max_pixels, freeze_vision_tower=freeze_vision_tower,
                                 held_out=world_grounding_checks(_val_tasks(world), protocol),
                                 target_hit_rate=target_hit_rate, max_steps=max_steps, on_step=on_step, race=race,
                                 peers_alive=peers_alive, record_as=record_as)
    except BaseException:
        if race is not None:
            race.fail()
        raise


def _box_side(expert) -> int:
    side = (expert or ExpertConfig()).box_side
    if side <= 0:
        raise ValueError("a grounding warm-up needs the expert's box_side > 0 (the one box per object it "
                         "teaches); set box_side (e.g. 256) or 0 grounding steps")
    return side


def world_image_statistics(world: Path, max_tasks: int = 64, tasks=None) -> tuple[list[float], list[float]]:
    """Per-channel pixel mean and std of the views an agent sees of the world's first ``max_tasks`` train
    tasks (whole images and zooms on targets): the tiny model's input normalisation."""
    return view_statistics(agent_views(tasks[:max_tasks] if tasks is not None
                                       else load_tasks(train_split(world), limit=max_tasks)))


def train_split(world: Path) -> Path:
    """``world/train.parquet``; a missing file is an error that says how to make it."""
    path = Path(world) / "train.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; make the world first: mapo world make --out {world}")
    return path
