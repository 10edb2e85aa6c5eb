"""Captions: every template names the object's attributes; partial descriptions drop what is unknown."""

from __future__ import annotations

import pytest

from mapo.data.world.captions import HELD_OUT_TEMPLATES, TEMPLATES, TRAIN_TEMPLATES, describe

OBJ = {"box": [0, 0, 32, 32], "shape": "triangle", "colour": "orange", "glyph": "8", "size": 32}


def test_every_template_mentions_every_attribute_and_wordings_differ():
    texts = [describe(OBJ, k) for k in range(len(TEMPLATES))]
    for text in texts:
        assert "orange" in text and "triangle" in text and ("8" in text or "eight" in text)
    assert len(set(texts)) == len(TEMPLATES)
    assert set(TRAIN_TEMPLATES).isdisjoint(HELD_OUT_TEMPLATES)
    assert set(TRAIN_TEMPLATES) | set(HELD_OUT_TEMPLATES) == set(range(len(TEMPLATES)))
    assert describe(OBJ, 1) == "an orange triangle marked 8"
    assert describe(OBJ, 4) == "one triangle painted orange that carries an eight"


def test_partial_descriptions_and_format_strings():
    assert describe(OBJ, 0, ("colour", "shape")) == "the orange triangle"
    assert describe(OBJ, 0, ("shape", "glyph")) == "the triangle with the digit 8"
    assert describe(OBJ, 0, ("colour", "glyph")) == "the orange object with the digit 8"
    assert describe(OBJ, "{glyph_word} on {colour}") == "eight on orange"
    with pytest.raises(ValueError, match="template 9"):
        describe(OBJ, 9)


def test_a_patterned_object_is_described_by_its_pattern_not_its_digit():
    striped = {**OBJ, "pattern": "vertical stripes"}
    texts = [describe(striped, k) for k in range(len(TEMPLATES))]
    assert all("vertical stripes" in t and "8" not in t and "eight" not in t for t in texts)
    assert len(set(texts)) == len(TEMPLATES)
    assert describe(striped, 1) == "an orange triangle with vertical stripes"
    assert describe(striped, 0, ("colour", "shape")) == "the orange triangle"
