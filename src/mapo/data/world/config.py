"""The typed configuration of the procedural visual-search world (YAML-loadable, ``--set key=value``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Question families the generator knows (see ``mapo.data.world.questions``).
FAMILIES = ("attribute", "relative_position", "digit_sum")

SPLITS = ("train", "val", "test")


class WorldConfig(BaseModel):
    """Everything that decides what the world draws and asks. Same config + same seed = same bytes."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = Field(0, description="Master seed; every (split, index) derives its own generator from it.")
    canvas_width: int = Field(1536, ge=224, le=8192, description="Canvas width in pixels.")
    canvas_height: int = Field(1536, ge=224, le=8192, description="Canvas height in pixels.")
    object_size_min: int = Field(22, ge=8, description="Smallest object side in pixels of the canvas.")
    object_size_max: int = Field(30, ge=8, description="Largest object side in pixels of the canvas.")
    target_size_min: int | None = Field(
        None, ge=8, description="Smallest target side in pixels (None: object_size_min). Targets larger than "
        "the clutter are easier to find at low resolution; their digit can stay unreadable there.")
    target_size_max: int | None = Field(
        None, ge=8, description="Largest target side in pixels (None: object_size_max).")
    clutter: int = Field(36, ge=0, le=400, description="Clutter objects drawn besides targets and decoys.")
    glyph_contrast: float = Field(
        0.5, gt=0, le=1, description="Digit ink contrast against its fill (1 = black/white ink)."
    )
    fill_jitter: int = Field(
        24, ge=0, le=60, description="Random +- levels per RGB channel of each object's fill."
    )
    glyph_shift: float = Field(
        0.06, ge=0, le=0.2, description="Random digit offset, as a fraction of the object size, per axis."
    )
    glyph_scale: float = Field(
        0.12, ge=0, le=0.3, description="Random +- fraction of each digit's font size."
    )
    unique_target_colour: bool = Field(
        False, description="No clutter object shares a target's colour, so the colour the question names finds "
        "the target at low resolution (what remains unreadable is the digit): an easier search, for small models."
    )
    min_gap: int = Field(6, ge=0, description="Minimum empty pixels between two objects' boxes.")
    background_lines: int = Field(
        12, ge=0, description="Faint random lines drawn on the background (texture)."
    )
    families: list[Literal["attribute", "relative_position", "digit_sum"]] = Field(
        default_factory=lambda: list(FAMILIES), description="Question families to draw from, uniformly."
    )
    attribute_asks: list[Literal["glyph", "colour", "shape", "pattern"]] = Field(
        default_factory=lambda: ["glyph", "colour", "shape"],
        description="Which attribute an `attribute` question may ask for, uniformly. `pattern`: the fine "
        "stripes or checks on the object (render.PATTERNS), a texture rather than a symbol to read.",
    )
    pattern_period: int = Field(
        4, ge=2, le=32, description="Pixels per cycle of an object's pattern: at 4, a 224-px view of a 1024-px "
        "canvas averages it to one flat tint, a zoom shows the stripes.")
    pattern_tint: float = Field(
        0.6, gt=0, le=1, description="How far a pattern's light half is blended toward white (1 = white).")
    answer_prior: float = Field(
        0.0, ge=0, le=1, description="Gap world: share of attribute questions whose answer is the attribute's "
        "prior value (first of its vocabulary, e.g. horizontal stripes), so answering it without looking is "
        "often right (mapo.data.world.gap). 0 = off.")
    n_train: int = Field(1000, ge=0, description="Tasks in the train split.")
    n_val: int = Field(150, ge=0, description="Tasks in the val split.")
    n_test: int = Field(150, ge=0, description="Tasks in the test split.")
    model_max_pixels: int = Field(
        224 * 224, ge=4 * 28 * 28, description="Pixel budget of the whole image as the model sees it (probe)."
    )
    crop_max_pixels: int = Field(
        224 * 224,
        ge=4 * 28 * 28,
        description="Pixel budget of each zoomed crop as the model sees it (probe).",
    )

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        if self.object_size_max < self.object_size_min:
            raise ValueError(
                f"object_size_max ({self.object_size_max}) is below object_size_min "
                f"({self.object_size_min}); set object_size_max >= object_size_min"
            )
        tmin = self.target_size_min or self.object_size_min
        tmax = self.target_size_max or self.object_size_max
        if tmax < tmin:
            raise ValueError(f"target_size_max ({tmax}) is below target_size_min ({tmin}); set "
                             "target_size_max >= target_size_min (either defaults to the object size)")
        if not self.families:
            raise ValueError("families is empty; list at least one of " + ", ".join(FAMILIES))
        if not self.attribute_asks:
            raise ValueError("attribute_asks is empty; list at least one of glyph, colour, shape, pattern")
        return self

    def split_size(self, split: str) -> int:
        """Number of tasks of ``split`` (train | val | test)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}[split]


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` -> (key, YAML-parsed value), e.g. ``clutter=60`` or ``families=[digit_sum]``."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key=value (e.g. --set clutter=60)")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def load_world_config(path: str | Path | None = None, overrides: list[str] | None = None) -> WorldConfig:
    """Load a ``WorldConfig`` from a YAML file (optional) and apply ``key=value`` overrides on top."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"world config {path} does not exist; pass an existing YAML file or omit it"
            )
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"world config {path} must be a YAML mapping of field: value")
        data.update(loaded)
    for text in overrides or []:
        key, value = parse_override(text)
        if key not in WorldConfig.model_fields:
            raise ValueError(
                f"unknown world config field {key!r} in --set {text!r}; "
                f"known: {', '.join(WorldConfig.model_fields)}"
            )
        data[key] = value
    return WorldConfig(**data)
