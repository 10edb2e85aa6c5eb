"""The (image hash, text) cache and the label penalties, on a counting stand-in backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mapo.verifier import LabelPenalties, Verifier, VerifierConfig
from mapo.verifier.cache import ScoreCache
from mapo.verifier.penalties import penalised_score


class CountingVerifier(Verifier):
    """Deterministic embeddings from text characters / mean pixel colour; counts what reaches the 'model'."""

    def __init__(self, cfg: VerifierConfig) -> None:
        super().__init__(cfg)
        self.texts_seen: list[str] = []
        self.images_seen = 0

    def _embed_texts(self, texts):
        self.texts_seen += texts
        v = torch.tensor([[sum(map(ord, t)) % 7 + 1.0, len(t) + 1.0, 1.0] for t in texts])
        return torch.nn.functional.normalize(v, dim=-1)

    def _embed_images(self, images):
        self.images_seen += len(images)
        v = torch.tensor(np.stack([np.asarray(im, dtype=np.float32).mean((0, 1)) + 1 for im in images]))
        return torch.nn.functional.normalize(v, dim=-1)


NO_PENALTY = LabelPenalties(empty_score=None, max_words=None)


def solid(rgb, size=(8, 8)):
    return Image.new("RGB", size, rgb)


def test_repeated_pairs_cost_nothing():
    v = CountingVerifier(VerifierConfig(penalties=NO_PENALTY))
    texts, images = ["red", "blue", "red"], [solid((255, 0, 0)), solid((0, 0, 255)), solid((0, 0, 255))]
    first = v.score(texts, images)
    assert v.texts_seen == ["red", "blue"] and v.images_seen == 2  # de-duplicated within a call
    # new PIL objects with the same pixels are the same key
    again = v.score(texts, [solid((255, 0, 0)), solid((0, 0, 255)), solid((0, 0, 255))])
    assert v.texts_seen == ["red", "blue"] and v.images_seen == 2
    torch.testing.assert_close(first, again)
    assert v.cache.hits == 3


def test_cache_is_keyed_on_both_text_and_pixels():
    v = CountingVerifier(VerifierConfig(penalties=NO_PENALTY))
    v.score(["red"], [solid((255, 0, 0))])
    v.score(["red"], [solid((254, 0, 0))])  # one pixel value differs
    v.score(["reds"], [solid((255, 0, 0))])
    assert v.cache.misses == 3 and v.cache.hits == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["red", "a blue one", "green", "x"]), st.integers(0, 3)),
                min_size=1, max_size=12))
def test_cached_scores_equal_uncached(pairs):
    palette = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (9, 9, 9)]
    texts = [t for t, _ in pairs]
    images = [solid(palette[c]) for _, c in pairs]
    cached = CountingVerifier(VerifierConfig(penalties=NO_PENALTY, batch_size=3))
    cached.score(texts[::-1], images[::-1])  # warm the cache in another order
    uncached = CountingVerifier(VerifierConfig(penalties=NO_PENALTY, cache_size=0))
    torch.testing.assert_close(cached.score(texts, images), uncached.score(texts, images))


def test_lru_evicts_the_least_recently_used():
    c = ScoreCache(2)
    c.put("a", 0.1)
    c.put("b", 0.2)
    assert c.get("a") == 0.1  # a is now the most recent
    c.put("c", 0.3)
    assert c.get("b") is None and c.get("a") == 0.1 and c.get("c") == 0.3
    assert len(c) == 2


def test_zero_capacity_stores_nothing():
    v = CountingVerifier(VerifierConfig(penalties=NO_PENALTY, cache_size=0))
    v.score(["red"], [solid((255, 0, 0))])
    v.score(["red"], [solid((255, 0, 0))])
    assert v.texts_seen == ["red", "red"]


def test_empty_label_gets_the_penalty_without_a_model_call():
    v = CountingVerifier(VerifierConfig(penalties=LabelPenalties(empty_score=-0.5)))
    s = v.score(["   ", "red"], [solid((255, 0, 0)), solid((255, 0, 0))])
    assert s[0].item() == -0.5 and v.texts_seen == ["red"]


def test_overlong_label_loses_score_per_extra_word():
    rules = LabelPenalties(max_words=3, overlong_penalty_per_word=0.1, min_score=-1.0)
    assert penalised_score("a b c", 0.5, rules) == 0.5
    assert penalised_score("a b c d e", 0.5, rules) == pytest.approx(0.3)
    assert penalised_score(" ".join("w" * 1 for _ in range(100)), 0.5, rules) == -1.0  # clipped


@given(st.text(max_size=60), st.floats(-1, 1))
def test_penalties_never_raise_a_score_or_leave_the_range(text, raw):
    rules = LabelPenalties(empty_score=None, max_words=4, overlong_penalty_per_word=0.05)
    s = penalised_score(text, raw, rules)
    assert -1.0 <= s <= raw + 1e-12
