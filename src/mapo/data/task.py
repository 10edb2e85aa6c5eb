"""The one record every data source produces: a visual question with options and, when known, target boxes.

The synthetic world, the DeepEyes-style training parquet and every benchmark loader return ``Task`` objects,
so the rollout engine, the rewards and the evaluator never see a source-specific format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in **pixels of the original image**: (x1, y1) inclusive, (x2, y2) exclusive."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        return cls(x, y, x + w, y + h)

    def intersection(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return max(0.0, w) * max(0.0, h)

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def contains(self, other: Box, min_fraction: float = 1.0) -> bool:
        """True when at least ``min_fraction`` of ``other``'s area lies inside this box."""
        if other.area <= 0:
            return False
        return self.intersection(other) / other.area >= min_fraction - 1e-9


@dataclass
class Task:
    """One question about one (usually high-resolution) image.

    ``options`` are the option texts in the order shown to the model; ``answer`` is the correct letter
    (``"A"``..) for multiple choice, or the free-form reference answer when ``options`` is empty.
    ``targets`` are the ground-truth boxes of the objects the question is about (empty when unknown);
    ``target_names`` describe them in words, aligned with ``targets``.
    """

    id: str
    image: Image.Image
    question: str
    answer: str
    options: list[str] = field(default_factory=list)
    category: str = ""
    source: str = ""
    targets: list[Box] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.options)

    @property
    def answer_text(self) -> str:
        """The text of the correct option (or the free-form answer)."""
        if self.options and len(self.answer) == 1 and self.answer in LETTERS[: len(self.options)]:
            return self.options[LETTERS.index(self.answer)]
        return self.answer

    def options_block(self) -> str:
        """Options as the model sees them: one ``(A) text`` line each."""
        return "\n".join(f"({LETTERS[i]}) {opt}" for i, opt in enumerate(self.options))
