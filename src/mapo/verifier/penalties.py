"""Anti-hacking adjustments of label scores: pure functions of the label text and its raw cosine score."""

from __future__ import annotations

from mapo.verifier.config import LabelPenalties


def is_empty_label(text: str) -> bool:
    """True for labels with no visible content (empty or whitespace only)."""
    return not text.strip()


def penalised_score(text: str, raw_score: float, rules: LabelPenalties) -> float:
    """The score MAPO uses for one label: ``raw_score`` (cosine, [-1, 1]) after the empty/overlong rules.

    Overlong labels lose ``overlong_penalty_per_word`` per word beyond ``max_words`` (a label that lists every
    possible object should not be able to match any crop); the result is clipped below at ``min_score``.
    """
    if rules.empty_score is not None and is_empty_label(text):
        return rules.empty_score
    score = raw_score
    if rules.max_words is not None:
        extra_words = len(text.split()) - rules.max_words
        if extra_words > 0:
            score -= rules.overlong_penalty_per_word * extra_words
    return max(rules.min_score, score)
