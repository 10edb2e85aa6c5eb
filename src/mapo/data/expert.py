"""Programmatic expert trajectories for cold-start SFT, with imperfections injected at known rates.

A clean expert thinks, zooms on each target with a jittered box (pixels of the original image, with a context
margin) and a label naming what the question tells it about the target, maybe zooms again closer, and answers.
``ExpertConfig`` rates inject the reasoning-action gap on purpose — at most one imperfection per trajectory:

- ``no_zoom``: answer at once, a guess.
- ``elsewhere``: every zoom lands on some other object (the label still claims the target), then the text
  states an answer anyway — a guess dressed up as reading the crop.
- ``wrong_label``: the zoom is right but the label names another object.
- ``guess``: the zoom and label are right, but the answer ignores the observation (a random option).

Each ``ExpertTrajectory`` records which imperfection was applied, its boxes and whether each hit a target,
so the gap can be measured exactly. Texts follow the DESIGN.md protocol (``<think>``, ``<tool_call>`` JSON,
``<answer>``), one string per assistant turn; observations are the rollout engine's job.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mapo.data.task import LETTERS, Box, Task
from mapo.data.world.captions import TRAIN_TEMPLATES, describe

TOOL_NAME = "image_zoom_in_tool"
IMPERFECTIONS = ("none", "no_zoom", "elsewhere", "wrong_label", "guess")


class ExpertConfig(BaseModel):
    """How the expert writes its trajectories, and how often it errs on purpose."""

    model_config = ConfigDict(extra="forbid")

    no_zoom_rate: float = Field(
        0.0, ge=0, le=1, description="share of trajectories that answer without zooming"
    )
    elsewhere_rate: float = Field(
        0.0, ge=0, le=1, description="share that zoom away from every target, then answer anyway (guess)"
    )
    wrong_label_rate: float = Field(
        0.0, ge=0, le=1, description="share whose zoom is right but label is wrong"
    )
    guess_rate: float = Field(
        0.0, ge=0, le=1, description="share whose zoom is right but whose answer is a random option"
    )
    refine_rate: float = Field(
        0.25, ge=0, le=1, description="share of single-target trajectories that zoom loosely, then closer"
    )
    margin_min: float = Field(0.75, ge=0, description="smallest context margin per side, in object sizes")
    margin_max: float = Field(2.0, ge=0, description="largest context margin per side, in object sizes")
    jitter: float = Field(
        0.5, ge=0, description="largest shift of the box centre, in object sizes (<= margin_min)"
    )
    refine_margin: float = Field(
        5.0, ge=0, description="context margin of the first, loose zoom, in object sizes"
    )
    label_templates: list[int] = Field(
        default_factory=lambda: list(TRAIN_TEMPLATES),
        description="caption templates the labels are drawn from",
    )
    box_min_side: int = Field(
        0, ge=0, description="grow every zoom box around its centre to at least this many pixels per side "
        "(0: off). Large boxes need only a coarse aim: a tiny model can learn them where a tight box is luck")
    box_grid: int = Field(
        1, ge=1, description="snap zoom box corners outwards to multiples of this many pixels (1: off); fewer "
        "distinct coordinates for a small model to learn")
    box_side: int = Field(
        0, ge=0, description="every zoom box is exactly this many pixels per side, placed on a grid of half its "
        "side where it best centres its object, with no jitter (0: off, boxes follow the object). The few "
        "coordinates this leaves (7 per axis for 256 px on a 1024-px canvas) are a classification a tiny model "
        "learns; a jittered box is noise it cannot. Objects up to half the side are always fully inside")
    label_first: bool = Field(
        False, description="write the call's label before its bbox_2d ({\"label\": ..., \"bbox_2d\": [...]}): the "
        "box then follows the name of what it looks for, as in a grounding question (\"Where is the red "
        "triangle?\" -> box), which a tiny model learns; the parser reads either order")
    answer_with: Literal["letter", "text"] = Field(
        "letter", description="what goes in <answer>: the option's letter, or its text (which the scorer maps to "
        "the letter, mapo.rewards.choice rule 4): a tiny model then need not look the letter up in the options")
    mode: Literal["label", "description"] = Field(
        "label", description="label: the call carries a label; description: a <description> follows each crop"
    )
    coordinates: Literal["pixel", "relative"] = Field(
        "pixel", description="bbox_2d in pixels of the original image, or fractions [0, 1] (3 decimals)"
    )

    @model_validator(mode="after")
    def _check(self) -> ExpertConfig:
        total = self.no_zoom_rate + self.elsewhere_rate + self.wrong_label_rate + self.guess_rate
        if total > 1 + 1e-9:
            raise ValueError(
                f"imperfection rates sum to {total:.3f} > 1; lower no_zoom/elsewhere/wrong_label/guess rates"
            )
        if self.margin_max < self.margin_min:
            raise ValueError("margin_max is below margin_min; set margin_max >= margin_min")
        if self.jitter > self.margin_min:
            raise ValueError(
                f"jitter ({self.jitter}) above margin_min ({self.margin_min}) could cut the target "
                f"out of a clean zoom; set jitter <= margin_min"
            )
        return self


@dataclass
class ExpertTrajectory:
    """One expert episode: the assistant turns and what was done on purpose."""

    turns: list[str]
    imperfection: str
    answer: str  # the letter answered
    correct: bool
    boxes: list[list[float]] = field(default_factory=list)  # zoom boxes in pixels of the original image
    labels: list[str] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)  # per zoom: the box fully contains some target


def _world_fields(task: Task) -> tuple[list[dict], list[dict], dict]:
    objects = task.extra.get("objects")
    query = task.extra.get("query")
    if not objects or not query:
        raise ValueError(
            f"task {task.id}: expert trajectories need a world task (extra['objects'] and "
            f"extra['query']); make data with `mapo world make`"
        )
    targets = [o for o in objects if o.get("role") == "target"]
    return objects, targets, query


def _pick_imperfection(rng: random.Random, cfg: ExpertConfig) -> str:
    u = rng.random()
    for name, rate in (
        ("no_zoom", cfg.no_zoom_rate),
        ("elsewhere", cfg.elsewhere_rate),
        ("wrong_label", cfg.wrong_label_rate),
        ("guess", cfg.guess_rate),
    ):
        if u < rate:
            return name
        u -= rate
    return "none"


def zoom_box(
    obj: dict, rng: random.Random, margin: tuple[float, float], jitter: float, width: int, height: int,
    min_side: int = 0, grid: int = 1,
) -> list[float]:
    """A box (pixels) around ``obj`` with a random margin per side and a jittered centre, clipped to the image.
    With ``jitter <= margin[0]`` the object stays fully inside. ``min_side``: grow the box around its centre to
    at least this side (shifted back inside the image); ``grid``: snap its corners outwards to multiples."""
    x1, y1, x2, y2 = obj["box"]
    size = max(x2 - x1, y2 - y1)
    dx, dy = rng.uniform(-jitter, jitter) * size, rng.uniform(-jitter, jitter) * size
    left, right, top, bottom = (rng.uniform(*margin) * size for _ in range(4))
    box = [x1 - left + dx, y1 - top + dy, x2 + right + dx, y2 + bottom + dy]
    # a shift may not push the object out: keep each side beyond the object
    box = [min(box[0], x1), min(box[1], y1), max(box[2], x2), max(box[3], y2)]
    if min_side > 0:
        box = _grow(box, min_side, width, height)
    if grid > 1:
        box = [math.floor(box[0] / grid) * grid, math.floor(box[1] / grid) * grid,
               math.ceil(box[2] / grid) * grid, math.ceil(box[3] / grid) * grid]
    return [
        float(max(0, round(box[0]))),
        float(max(0, round(box[1]))),
        float(min(width, round(box[2]))),
        float(min(height, round(box[3]))),
    ]


def grid_box(obj: dict, side: int, width: int, height: int) -> list[float]:
    """The ``side`` x ``side`` box on the grid of stride ``side // 2`` whose centre is nearest ``obj``'s centre
    (kept inside the image, at most the image). Deterministic: the same object always gets the same box."""
    x1, y1, x2, y2 = obj["box"]
    stride = max(1, side // 2)
    out = []
    for lo, hi, limit in ((x1, x2, width), (y1, y2, height)):
        s = min(side, limit)
        start = round(((lo + hi) / 2 - s / 2) / stride) * stride
        start = min(max(0, start), limit - s)
        out.append((float(start), float(start + s)))
    return [out[0][0], out[1][0], out[0][1], out[1][1]]


def _grow(box: list[float], side: int, width: int, height: int) -> list[float]:
    """``box`` grown around its centre to at least ``side`` per axis (at most the image), kept inside it."""
    out = list(box)
    for lo, hi, limit in ((0, 2, width), (1, 3, height)):
        want = min(max(out[hi] - out[lo], side), limit)
        centre = (out[lo] + out[hi]) / 2
        start = min(max(0.0, centre - want / 2), limit - want)
        out[lo], out[hi] = start, start + want
    return out


def _elsewhere_box(
    objects: list[dict], targets: list[dict], rng: random.Random, cfg: ExpertConfig, width: int, height: int
) -> tuple[list[float], dict | None]:
    """A zoom box around a non-target object that overlaps no target at all."""
    target_boxes = [Box(*map(float, t["box"])) for t in targets]
    others = [o for o in objects if o.get("role") != "target"]
    rng.shuffle(others)
    for obj in others:
        box = _target_box(obj, rng, cfg, width, height)
        if all(Box(*box).intersection(t) == 0 for t in target_boxes):
            return box, obj
    for _ in range(1000):  # no clean non-target object: an empty patch of background
        s = rng.uniform(60, 160)
        x, y = rng.uniform(0, max(1.0, width - s)), rng.uniform(0, max(1.0, height - s))
        box = [
            float(round(x)),
            float(round(y)),
            float(round(min(width, x + s))),
            float(round(min(height, y + s))),
        ]
        if all(Box(*box).intersection(t) == 0 for t in target_boxes):
            return box, None
    raise ValueError(
        "no region of the image avoids every target; the image is too crowded for an elsewhere zoom"
    )


def _target_box(obj: dict, rng: random.Random, cfg: ExpertConfig, width: int, height: int) -> list[float]:
    """The expert's (closest) zoom box on ``obj``: a fixed grid box with ``box_side``, else a jittered one."""
    if cfg.box_side > 0:
        return grid_box(obj, cfg.box_side, width, height)
    return zoom_box(obj, rng, (cfg.margin_min, cfg.margin_max), cfg.jitter, width, height, cfg.box_min_side,
                    cfg.box_grid)


def _call(box: list[float], label: str, cfg: ExpertConfig, width: int, height: int) -> str:
    if cfg.coordinates == "relative":
        bbox: list[float] = [
            round(box[0] / width, 3),
            round(box[1] / height, 3),
            round(box[2] / width, 3),
            round(box[3] / height, 3),
        ]
    else:
        bbox = [int(v) for v in box]
    arguments: dict = {"bbox_2d": bbox}
    if cfg.mode == "label":
        arguments = {"label": label, "bbox_2d": bbox} if cfg.label_first else {"bbox_2d": bbox, "label": label}
    return "<tool_call>" + json.dumps({"name": TOOL_NAME, "arguments": arguments}) + "</tool_call>"


def _contains_target(box: list[float], targets: list[dict]) -> bool:
    return any(Box(*box).contains(Box(*map(float, t["box"]))) for t in targets)


def expert_trajectory(task: Task, rng: random.Random, cfg: ExpertConfig | None = None) -> ExpertTrajectory:
    """Write one expert episode for a world ``task``. Deterministic given ``rng``'s state."""
    cfg = cfg or ExpertConfig()
    objects, targets, query = _world_fields(task)
    width, height = task.image.size
    imperfection = _pick_imperfection(rng, cfg)
    known = tuple(query.get("known") or ("colour", "shape"))
    template = rng.choice(cfg.label_templates)
    labels = [describe(t, template, known) for t in targets]
    seen = [describe(t, template) for t in targets]  # what a clean crop shows

    guessed = rng.choice(LETTERS[: len(task.options)])
    answer = guessed if imperfection in ("no_zoom", "elsewhere", "guess") else task.answer
    answer_text = task.options[LETTERS.index(answer)]
    subject = " and ".join(labels)

    if imperfection == "no_zoom":
        said = answer_text if cfg.answer_with == "text" else answer
        turn = (
            f"<think>The question is about {subject}. I answer from the whole image. "
            f"So the answer is {answer_text}.</think>\n<answer>{said}</answer>"
        )
        return ExpertTrajectory([turn], imperfection, answer, answer == task.answer)

    plan: list[tuple[list[float], str, str]] = []  # (box, label, what the crop shows)
    for k, target in enumerate(targets):
        label, shows = labels[k], seen[k]
        if imperfection == "elsewhere":
            box, obj = _elsewhere_box(objects, targets, rng, cfg, width, height)
            plan.append((box, label, describe(obj, template) if obj else "only background"))
            continue
        if imperfection == "wrong_label":
            others = [o for o in objects if o.get("role") != "target"]
            other = rng.choice(others) if others else None
            if cfg.mode == "label":
                label = describe(other, template, known) if other else "an empty patch of background"
            else:
                shows = describe(other, template) if other else "only background"
        if len(targets) == 1 and rng.random() < cfg.refine_rate:
            loose = zoom_box(
                target, rng, (cfg.refine_margin, cfg.refine_margin * 1.3), cfg.jitter, width, height
            )
            plan.append((loose, label, shows))
        plan.append((_target_box(target, rng, cfg, width, height), label, shows))

    turns: list[str] = []
    previous = ""
    for k, (box, label, shows) in enumerate(plan):
        if cfg.mode == "description" and k > 0:
            opening = f"<description>{previous}</description>\n"
        else:
            opening = ""
        if k == 0:
            think = f"The question is about {subject}. Its details are too small to read in the full image, so I zoom in."
        elif plan[k - 1][1] == label:
            think = f"I see {label}, but it is still small; I zoom in closer."
        else:
            think = f"This shows {previous}. Now I zoom in on {label}."
        turns.append(f"{opening}<think>{think}</think>\n{_call(box, label, cfg, width, height)}")
        previous = shows
    opening = f"<description>{previous}</description>\n" if cfg.mode == "description" else ""
    if imperfection == "elsewhere":
        reading = f"The zoomed view shows {subject}."
    elif len(targets) == 1:
        reading = f"The zoomed view shows {seen[0]}."
    else:
        reading = f"The zoomed views show {seen[0]} and {seen[1]}."
    said = answer_text if cfg.answer_with == "text" else answer
    turns.append(
        f"{opening}<think>{reading} So the answer is {answer_text}.</think>\n<answer>{said}</answer>"
    )
    return ExpertTrajectory(
        turns,
        imperfection,
        answer,
        answer == task.answer,
        boxes=[p[0] for p in plan],
        labels=[p[1] for p in plan],
        hits=[_contains_target(p[0], targets) for p in plan],
    )


def expert_turns(task: Task, rng: random.Random, cfg: ExpertConfig | None = None) -> list[str]:
    """The assistant turns of one expert episode as texts (see ``expert_trajectory`` for the record)."""
    return expert_trajectory(task, rng, cfg).turns
