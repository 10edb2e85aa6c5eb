"""Text normalisation for answer matching (SQuAD-style: case, punctuation, articles, whitespace)."""

from __future__ import annotations

import re
import string
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_text(text: str) -> str:
    """Lower-case, NFKC, punctuation -> space, drop English articles, collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def normalized_match(prediction: str, reference: str) -> bool:
    """True when both texts are equal after ``normalize_text`` (and the reference is not empty)."""
    ref = normalize_text(reference)
    return bool(ref) and normalize_text(prediction) == ref


# Words that turn "red" in "it is not red" into the opposite answer, and the one that hedges ("red or blue").
_NEGATIONS = frozenset({"not", "no", "never", "neither", "nor", "none", "without", "t", "cannot"})
_HEDGES = frozenset({"or"})
_YES_NO = frozenset({"yes", "no"})


def phrase_match(prediction: str, reference: str, max_extra_words: int = 12) -> bool:
    """Free-form match for short reference answers: "The umbrella is red." matches "red".

    After ``normalize_text``: equal texts match; otherwise the reference must appear as a whole-word phrase in
    a prediction at most ``max_extra_words`` longer, and the prediction must not negate or hedge ("not red",
    "red or blue") unless the reference itself does. A yes/no reference must be the prediction's first word.
    Ambiguous cases beyond these rules are what the judge (``free_form: contains_then_judge``) is for.
    """
    ref, pred = normalize_text(reference).split(), normalize_text(prediction).split()
    if not ref or not pred:
        return False
    if pred == ref:
        return True
    if len(ref) == 1 and ref[0] in _YES_NO:
        return pred[0] == ref[0]
    if len(pred) > len(ref) + max_extra_words:
        return False
    guard = (_NEGATIONS | _HEDGES) - set(ref)
    if any(w in guard for w in pred):
        return False
    return any(pred[i:i + len(ref)] == ref for i in range(len(pred) - len(ref) + 1))
