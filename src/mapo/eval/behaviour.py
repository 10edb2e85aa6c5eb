"""Two failure modes RL can drift into, as rates (pure functions over texts; no model).

- **Label drift**: a zoom's label that does not name the object the question is about. The referent's words
  are the colour and shape words (the embedded world's vocabulary) that both the question and the target's
  name contain ("What pattern is on the red triangle?" + "the small red triangle with checks" -> {red,
  triangle}); a label names the referent when it contains every such word of at least one target. A task whose
  question names no such word (most external benchmarks) is not judged. This is how MAPO's semantic reward can
  be won without zooming better: describe whatever the crop shows ("the cyan triangle") instead of the intent.
- **Repetition**: a response containing a unit of 1-3 words repeated ``min_repeats`` times in a row
  ("answer answer answer answer"): the degeneration a too-large policy step produces.
- **Answer concentration**: the share of answers that are the most common answer. Near 1, the policy gives one
  answer whatever the question and the image (an answer prior, not a reading), while it may still zoom and
  label well: the shortcut the gap world (``WorldConfig.answer_prior``) pays for.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from mapo.data.world.render import COLOURS, SHAPES

REFERENT_VOCABULARY = frozenset(list(COLOURS) + list(SHAPES))
_WORD = re.compile(r"[a-z]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def referent_words(question: str, target_names: Sequence[str]) -> list[set[str]]:
    """Per target, the colour/shape words that the question uses to name it (empty sets are dropped)."""
    asked = _words(question) & REFERENT_VOCABULARY
    out = [(_words(name) & asked) for name in target_names]
    return [w for w in out if w]


def names_referent(label: str, question: str, target_names: Sequence[str]) -> bool | None:
    """Does ``label`` name (one of) the question's target object(s)? None: the task cannot be judged."""
    wanted = referent_words(question, target_names)
    if not wanted:
        return None
    said = _words(label or "")
    return any(w <= said for w in wanted)


def label_drift(items: Iterable[tuple[str, str, Sequence[str]]]) -> float | None:
    """Share of judged ``(label, question, target_names)`` whose label misses the referent (None: none judged)."""
    judged = [names_referent(*item) for item in items]
    judged = [j for j in judged if j is not None]
    return sum(1 for j in judged if not j) / len(judged) if judged else None


def _repeat_pattern(min_repeats: int) -> re.Pattern[str]:
    unit = r"\b(\w+(?:\W+\w+){0,2}?)"
    return re.compile(unit + r"(?:\W+\1\b){" + str(min_repeats - 1) + ",}", re.IGNORECASE)


def is_repetitive(text: str, min_repeats: int = 4) -> bool:
    """True when ``text`` repeats a 1-3 word unit ``min_repeats`` or more times in a row."""
    return bool(_repeat_pattern(min_repeats).search(text or ""))


def repetition_rate(texts: Iterable[str], min_repeats: int = 4) -> float | None:
    """Share of ``texts`` (whole responses) that are repetitive (None for no text)."""
    flags = [is_repetitive(t, min_repeats) for t in texts]
    return sum(flags) / len(flags) if flags else None


def answer_concentration(answers: Iterable[str | None]) -> float | None:
    """Share of the given answers (case and spacing folded; None = no answer, left out) that equal the most
    common one (None when there is no answer)."""
    counts = Counter(" ".join(a.lower().split()) for a in answers if a is not None and a.strip())
    total = sum(counts.values())
    return counts.most_common(1)[0][1] / total if total else None
