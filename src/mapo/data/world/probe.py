"""Proof that the world needs zooming: can the question be answered from the whole image as the model sees it?

Two views of every object, made with exactly the functions the agent uses (``mapo.data.images.fit_to_budget``):
- ``whole``: the canvas shrunk to the model's budget (``WorldConfig.model_max_pixels``), the object's patch
  cut out of it;
- ``crop``: a ground-truth zoom (the object's box plus one object size of margin per side) shrunk to the crop
  budget (``crop_max_pixels``), the object's patch cut out of that.

Per view, a small CNN learns colour, shape and digit from patches of the train split (every object: targets,
decoys, clutter) and is scored on the val split. A reader then answers each val question from those predicted
distributions — given every object's exact box for free (oracle detection, generous to the whole view): it
weighs each object by how well it matches what the question names, and reads the asked attribute, the
relation of the two best candidate pairs, or the sum of two digits. ``whole`` reads every object from the
whole view; ``crop`` reads the targets from their ground-truth crops (everything else from the whole view).
Near-chance ``whole`` and near-perfect ``crop`` accuracy mean the world tests what MAPO is about.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import nn

from mapo.data.images import fit_to_budget
from mapo.data.task import LETTERS, Task
from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import generate_tasks
from mapo.data.world.questions import relation
from mapo.data.world.render import COLOURS, GLYPHS, PATTERNS, SHAPES

PATCH = 48  # side of the patch (pixels) an object is resampled to: fine enough for a zoomed 4-px pattern
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {"colour": tuple(COLOURS), "shape": SHAPES, "glyph": GLYPHS,
                                                "pattern": PATTERNS}
IGNORE = -100  # label of an attribute an object does not show (a patterned object has no digit, a plain one no pattern)
VIEWS = ("whole", "crop")


@dataclass
class ProbeReport:
    """Probe figures. Accuracies in [0, 1]; ``chance`` is what guessing gets."""

    n_train_tasks: int
    n_eval_tasks: int
    attribute_accuracy: dict[str, dict[str, float]]  # view -> attribute -> accuracy on val objects
    task_accuracy: dict[str, float]  # view -> accuracy of the reader on val questions
    task_accuracy_by_category: dict[str, dict[str, float]]  # view -> category -> accuracy
    chance: dict[str, float] = field(
        default_factory=lambda: {
            "colour": 1 / len(COLOURS),
            "shape": 1 / len(SHAPES),
            "glyph": 1 / len(GLYPHS),
            "pattern": 1 / len(PATTERNS),
            "task": 0.25,
        }
    )

    def table(self) -> str:
        """A Markdown table of the figures."""
        def cell(x: float) -> str:  # an attribute no val object shows has no accuracy
            return "n/a" if math.isnan(x) else f"{x:.3f}"

        lines = ["| view | colour | shape | digit | pattern | question (reader) |", "|---|---|---|---|---|---|"]
        for view in VIEWS:
            a = self.attribute_accuracy[view]
            lines.append(
                f"| {view} | {cell(a['colour'])} | {cell(a['shape'])} | {cell(a['glyph'])} | "
                f"{cell(a['pattern'])} | {self.task_accuracy[view]:.3f} |"
            )
        c = self.chance
        lines.append(
            f"| chance | {c['colour']:.3f} | {c['shape']:.3f} | {c['glyph']:.3f} | {c['pattern']:.3f} | "
            f"{c['task']:.3f} |"
        )
        lines.append("")
        cats = sorted(self.task_accuracy_by_category["whole"])
        lines.append("| view | " + " | ".join(cats) + " |")
        lines.append("|---|" + "---|" * len(cats))
        for view in VIEWS:
            lines.append(
                f"| {view} | "
                + " | ".join(f"{self.task_accuracy_by_category[view][c]:.3f}" for c in cats)
                + " |"
            )
        return "\n".join(lines)


def _patch(
    view: Image.Image, box: list[float], scale_x: float, scale_y: float, offset=(0.0, 0.0)
) -> np.ndarray:
    """The object's region of ``view`` (box in original pixels; view = original shifted by ``offset``, scaled),
    widened by 10% and resampled to PATCH x PATCH, as float32 HWC in [0, 1]."""
    x1, y1, x2, y2 = box
    pad = 0.1 * (x2 - x1)
    region = (
        (x1 - pad - offset[0]) * scale_x,
        (y1 - pad - offset[1]) * scale_y,
        (x2 + pad - offset[0]) * scale_x,
        (y2 + pad - offset[1]) * scale_y,
    )
    # a large object near the border: its widened region may leave the view; keep it inside
    region = (max(0.0, region[0]), max(0.0, region[1]), min(float(view.width), region[2]),
              min(float(view.height), region[3]))
    patch = view.resize((PATCH, PATCH), Image.BILINEAR, box=region)
    return np.asarray(patch, dtype=np.float32) / 255.0


def whole_patches(task: Task, cfg: WorldConfig) -> np.ndarray:
    """Patches of every object as seen in the whole image at the model's budget: float32 [N_obj, P, P, 3]."""
    view = fit_to_budget(task.image, cfg.model_max_pixels)
    sx, sy = view.width / task.image.width, view.height / task.image.height
    return np.stack([_patch(view, o["box"], sx, sy) for o in task.extra["objects"]])


def crop_patch(task: Task, obj: dict, cfg: WorldConfig, margin: float = 1.0) -> np.ndarray:
    """The object's patch in a ground-truth zoom (box + ``margin`` object sizes per side) at the crop budget."""
    x1, y1, x2, y2 = obj["box"]
    m = margin * (x2 - x1)
    crop_box = (max(0, x1 - m), max(0, y1 - m), min(task.image.width, x2 + m), min(task.image.height, y2 + m))
    crop = task.image.crop(tuple(round(v) for v in crop_box))
    view = fit_to_budget(crop, cfg.crop_max_pixels)
    sx, sy = view.width / crop.width, view.height / crop.height
    return _patch(view, obj["box"], sx, sy, offset=(round(crop_box[0]), round(crop_box[1])))


class PatchReader(nn.Module):
    """A small CNN reading colour, shape and digit from a PATCH x PATCH patch (one head per attribute)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (PATCH // 4) ** 2, 128),
            nn.ReLU(),
        )  # keeps where strokes are
        self.heads = nn.ModuleDict({a: nn.Linear(128, len(v)) for a, v in ATTRIBUTE_VALUES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: float [B, P, P, 3] in [0, 1] -> logits per attribute [B, n_values]."""
        h = self.body(x.permute(0, 3, 1, 2) - 0.5)
        return {a: head(h) for a, head in self.heads.items()}


def _label(obj: dict, attribute: str) -> int:
    if attribute == "pattern":
        return PATTERNS.index(obj["pattern"]) if obj.get("pattern") else IGNORE
    if attribute == "glyph" and obj.get("pattern"):
        return IGNORE  # a patterned object is drawn without its digit
    return ATTRIBUTE_VALUES[attribute].index(obj[attribute])


def _labels(objects: list[dict]) -> dict[str, torch.Tensor]:
    return {a: torch.tensor([_label(o, a) for o in objects], dtype=torch.long) for a in ATTRIBUTE_VALUES}


def train_reader(patches: np.ndarray, objects: list[dict], epochs: int = 20, seed: int = 0) -> PatchReader:
    """Fit a ``PatchReader`` on patches [N, P, P, 3] with their objects' attributes (Adam, cross-entropy)."""
    torch.manual_seed(seed)
    model = PatchReader()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = torch.from_numpy(patches), _labels(objects)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            logits = model(x[idx])
            loss = sum(nn.functional.cross_entropy(logits[a], y[a][idx], ignore_index=IGNORE)
                       for a in ATTRIBUTE_VALUES if (y[a][idx] != IGNORE).any())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def read(model: PatchReader, patches: np.ndarray) -> dict[str, np.ndarray]:
    """Predicted distributions per attribute: [N, n_values] (rows sum to 1)."""
    out = model(torch.from_numpy(patches))
    return {a: torch.softmax(v, -1).numpy() for a, v in out.items()}


def answer(task: Task, probs: dict[str, np.ndarray]) -> str:
    """The reader's letter for ``task`` given per-object attribute distributions ``probs[a]`` [N_obj, n_a]."""
    objects = task.extra["objects"]
    query = task.extra["query"]
    targets = [o for o in objects if o["role"] == "target"]

    def match(target: dict) -> np.ndarray:  # how well each object fits what the question names: [N_obj]
        w = np.ones(len(objects))
        for a in query["known"]:
            w = w * probs[a][:, ATTRIBUTE_VALUES[a].index(target[a])]
        return w / max(w.sum(), 1e-12)

    scores = np.zeros(len(task.options))
    ask = query["ask"]
    if ask in ATTRIBUTE_VALUES:
        w = match(targets[0])
        for k, opt in enumerate(task.options):
            scores[k] = float(w @ probs[ask][:, ATTRIBUTE_VALUES[ask].index(opt)])
    elif ask == "relation":
        wa, wb = match(targets[0]), match(targets[1])
        for i, j in itertools.permutations(range(len(objects)), 2):
            if wa[i] * wb[j] > 1e-9:
                rel = relation(objects[i], objects[j])[0]
                if rel in task.options:
                    scores[task.options.index(rel)] += wa[i] * wb[j]
    elif ask == "sum":
        i, j = int(np.argmax(match(targets[0]))), int(np.argmax(match(targets[1])))
        dist = np.convolve(probs["glyph"][i], probs["glyph"][j])  # P(digit_i + digit_j = s), s = 0..18
        for k, opt in enumerate(task.options):
            scores[k] = dist[int(opt)]
    else:
        raise ValueError(f"task {task.id}: unknown ask {ask!r}")
    return LETTERS[int(np.argmax(scores))]


def _crop_patches(tasks: list[Task], cfg: WorldConfig, only_targets: bool) -> list[np.ndarray]:
    return [
        np.stack(
            [crop_patch(t, o, cfg) for o in t.extra["objects"] if not only_targets or o["role"] == "target"]
        )
        for t in tasks
    ]


def run_probe(cfg: WorldConfig, n_train: int = 250, n_eval: int = 200, epochs: int = 20) -> ProbeReport:
    """Train the patch readers on ``n_train`` train tasks and score them and the reader on ``n_eval`` val tasks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is faster than contended ones on a shared CPU
    try:
        return _run_probe(cfg, n_train, n_eval, epochs)
    finally:
        torch.set_num_threads(threads)


def _run_probe(cfg: WorldConfig, n_train: int, n_eval: int, epochs: int) -> ProbeReport:
    train, val = generate_tasks(cfg, "train", n_train), generate_tasks(cfg, "val", n_eval)
    train_objects = [o for t in train for o in t.extra["objects"]]
    val_objects = [o for t in val for o in t.extra["objects"]]
    whole_train = [whole_patches(t, cfg) for t in train]
    whole_val = [whole_patches(t, cfg) for t in val]
    crop_train = _crop_patches(train, cfg, only_targets=False)
    crop_val = _crop_patches(val, cfg, only_targets=False)
    readers = {
        "whole": train_reader(np.concatenate(whole_train), train_objects, epochs),
        "crop": train_reader(np.concatenate(crop_train), train_objects, epochs),
    }
    truth = _labels(val_objects)
    attribute_accuracy: dict[str, dict[str, float]] = {}
    for view, patches in (("whole", whole_val), ("crop", crop_val)):
        probs = read(readers[view], np.concatenate(patches))
        attribute_accuracy[view] = {}
        for a in ATTRIBUTE_VALUES:  # over the objects that show the attribute (nan: none does)
            shown = truth[a].numpy() != IGNORE
            right = probs[a].argmax(1)[shown] == truth[a].numpy()[shown]
            attribute_accuracy[view][a] = float(right.mean()) if shown.any() else float("nan")
    task_accuracy: dict[str, float] = {}
    by_category: dict[str, dict[str, float]] = {}
    for view in VIEWS:
        hits: dict[str, list[bool]] = {}
        for t, wp, cp in zip(val, whole_val, crop_val):
            probs = read(readers["whole"], wp)
            if view == "crop":  # the targets are read from their ground-truth zooms
                target_rows = [k for k, o in enumerate(t.extra["objects"]) if o["role"] == "target"]
                zoomed = read(readers["crop"], cp[target_rows])
                for a in probs:
                    probs[a][target_rows] = zoomed[a]
            hits.setdefault(t.category, []).append(answer(t, probs) == t.answer)
        all_hits = [h for v in hits.values() for h in v]
        task_accuracy[view] = float(np.mean(all_hits))
        by_category[view] = {c: float(np.mean(v)) for c, v in sorted(hits.items())}
    return ProbeReport(len(train), len(val), attribute_accuracy, task_accuracy, by_category)
