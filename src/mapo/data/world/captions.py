"""Natural-language descriptions of world objects: question wording, expert labels, verifier captions.

Several templates word the same object differently; ``HELD_OUT_TEMPLATES`` are never used by the world's
questions or the expert, so the verifier can be tested on wordings it never saw in training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Attributes a description may mention ("glyph" is the object's marking: its digit, or its pattern).
ATTRIBUTES = ("size", "colour", "shape", "glyph")

#: How each template words a patterned object's marking (same order as ``TEMPLATES``).
PATTERN_WORDING = (" with {pattern}", " with {pattern}", ", {pattern}", " covered in {pattern}",
                   " that carries {pattern}", " patterned with {pattern}")


@dataclass(frozen=True)
class CaptionTemplate:
    """A wording: ``head`` names the object (``{size}``, ``{colour}``, ``{shape}``), ``glyph`` adds its digit."""

    head: str
    glyph: str


TEMPLATES: tuple[CaptionTemplate, ...] = (
    CaptionTemplate("the {size} {colour} {shape}", " with the digit {glyph}"),
    CaptionTemplate("a {colour} {shape}", " marked {glyph}"),
    CaptionTemplate("{colour} {shape}", ", digit {glyph}"),
    CaptionTemplate("a {size} {colour} {shape}", " showing the number {glyph}"),
    CaptionTemplate("one {shape} painted {colour}", " that carries a {glyph_word}"),
    CaptionTemplate("a {colour} coloured {shape}", " labelled {glyph_word}"),
)

#: Templates for training (questions, expert labels, verifier training).
TRAIN_TEMPLATES: tuple[int, ...] = (0, 1, 2, 3)
#: Templates kept out of all training text: the verifier's test of unseen wordings.
HELD_OUT_TEMPLATES: tuple[int, ...] = (4, 5)


def size_word(size_px: int) -> str:
    """A coarse size word for an object side length in pixels (objects are all small by design)."""
    return "tiny" if size_px < 24 else "small"


def describe(obj: dict, template: int | str = 0, attributes: tuple[str, ...] | None = None) -> str:
    """Describe ``obj`` (a world object dict) in words.

    ``template``: an index into ``TEMPLATES`` or a ``str.format`` pattern over ``{size}``, ``{colour}``,
    ``{shape}``, ``{glyph}``, ``{glyph_word}``, ``{pattern}``. A patterned object's marking is its pattern. ``attributes``: which of ``ATTRIBUTES`` to mention (default
    all); an omitted colour or glyph is dropped from the wording, an omitted shape becomes "object" — the
    expert uses this to name only what the question tells it before zooming.
    """
    keep = set(ATTRIBUTES if attributes is None else attributes)
    unknown = keep - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"describe: unknown attributes {sorted(unknown)}; use a subset of {ATTRIBUTES}")
    glyph = str(obj["glyph"])
    values = {
        "size": size_word(int(obj["size"])) if "size" in keep else "",
        "colour": obj["colour"] if "colour" in keep else "",
        "shape": obj["shape"] if "shape" in keep else "object",
        "glyph": glyph,
        "glyph_word": DIGIT_WORDS[int(glyph)] if glyph.isdigit() else glyph,
        "pattern": obj.get("pattern") or "",
    }
    if isinstance(template, str):
        text = template.format(**values)
    else:
        if not 0 <= template < len(TEMPLATES):
            raise ValueError(
                f"describe: template {template} out of range; use 0..{len(TEMPLATES) - 1} or a format string"
            )
        tpl = TEMPLATES[template]
        text = tpl.head.format(**values)
        if values["colour"] == "" and "painted" in text:
            text = text.replace(" painted ", " ")
        if values["colour"] == "" and "coloured" in text:
            text = text.replace(" coloured ", " ")
        if "glyph" in keep:
            if obj.get("pattern"):
                text += PATTERN_WORDING[template].format(pattern=obj["pattern"])
            else:
                text += tpl.glyph.format(**values)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\ba (?=[aeiou])", "an ", text)
