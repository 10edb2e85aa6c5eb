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
