"""Multiple-choice answer extraction: which option letter does a free-text answer pick?

Rules, tried in order; the first that decides wins:

1. the whole answer is a letter form: ``B``, ``(B)``, ``B.``, ``b)``, or a letter form followed by text
   (``B. red``, ``(B) red``);
2. an explicit phrase: ``the answer is B``, ``answer: (b)``; then ``option C``, ``choice (A)`` (a verdict
   "the answer is D" outranks options merely mentioned);
3. letters in parentheses anywhere: ``... so (B)``;
4. the option's text: exact after normalisation, else the one option whose text occurs in the answer
   (options contained in a longer matching option, e.g. "red" in "dark red", are ignored);
5. bare capital letters standing alone: ``I pick B``.

Whenever a rule finds **several different letters** (``A or B``), the answer is ambiguous and scores as no
choice (``None``): a hedge is never rewarded. Only letters of existing options count (``E`` with four options is
ignored). Lower-case letters count only where they cannot be an English word (``(b)``, ``answer: b.``), so
"the answer is a red car" does not pick A.
"""

from __future__ import annotations

import re

from mapo.data.task import LETTERS
from mapo.rewards.answer_span import extract_answer_span
from mapo.rewards.normalize import normalize_text

# A letter form: optional "(", the letter, optional ")" / "." / ":" and nothing but text after a separator.
_WHOLE = re.compile(r"^\s*\(?\s*([A-Ja-j])\s*\)?\s*[.:)]?\s*$")
_PREFIXED = re.compile(r"^\s*(?:\(\s*([A-Ja-j])\s*\)|([A-Ja-j])\s*[.:)])\s*(\S.*)$", re.DOTALL)
_LETTER_AFTER = (r"\s*:?\s*(?:\(\s*([A-Ja-j])\s*\)|([A-J])(?![A-Za-z])|([a-j])(?=\s*(?:[.,;:!)]|$)))")
# "answer is B" outranks "option B": explanations often mention several options before the verdict.
_ANSWER_PHRASE = re.compile(r"(?i:answer)\s*(?i:is|would be|should be|=)?" + _LETTER_AFTER)
_OPTION_PHRASE = re.compile(r"(?i:option|choice)\s*(?i:is)?" + _LETTER_AFTER)
_PAREN = re.compile(r"\(\s*([A-Ja-j])\s*\)")
_OR_LETTER = re.compile(r"\b(?:or|and)\s+([A-J])(?![A-Za-z])")
_BARE = re.compile(r"(?<![A-Za-z0-9'’-])([A-J])(?![A-Za-z0-9'’-])")


class Ambiguous(Exception):
    """Several different letters were found by one rule."""


def _valid(letters: list[str], n_options: int) -> list[str]:
    allowed = LETTERS[:n_options]
    return [c.upper() for c in letters if c and c.upper() in allowed]


def _single(letters: list[str]) -> str | None:
    distinct = sorted(set(letters))
    if len(distinct) > 1:
        raise Ambiguous(distinct)
    return distinct[0] if distinct else None


def _by_letter_form(text: str, n: int) -> str | None:
    m = _WHOLE.match(text)
    if m:
        return _single(_valid([m.group(1)], n))
    m = _PREFIXED.match(text)
    if m:
        # Letters in parentheses or after "or" in the rest ("(A) or (B)") make the answer a hedge.
        others = _PAREN.findall(m.group(3)) + _OR_LETTER.findall(m.group(3))
        return _single(_valid([m.group(1) or m.group(2), *others], n))
    return None


def _phrase_rule(pattern: re.Pattern[str]):
    def rule(text: str, n: int) -> str | None:
        found = [next(g for g in m.groups() if g) for m in pattern.finditer(text)]
        return _single(_valid(found, n))
    return rule


_by_answer_phrase = _phrase_rule(_ANSWER_PHRASE)
_by_option_phrase = _phrase_rule(_OPTION_PHRASE)


def _by_paren(text: str, n: int) -> str | None:
    return _single(_valid(_PAREN.findall(text), n))


def _by_option_text(text: str, options: list[str]) -> str | None:
    norm = normalize_text(text)
    if not norm:
        return None
    norm_opts = [normalize_text(o) for o in options]
    exact = [LETTERS[i] for i, o in enumerate(norm_opts) if o and o == norm]
    if exact:
        return _single(exact)
    padded = f" {norm} "
    inside = [i for i, o in enumerate(norm_opts) if o and f" {o} " in padded]
    # Drop options that only match because they are part of a longer matching option ("red" in "dark red").
    kept = [i for i in inside
            if not any(j != i and f" {norm_opts[i]} " in f" {norm_opts[j]} " and norm_opts[i] != norm_opts[j]
                       for j in inside)]
    return _single([LETTERS[i] for i in kept])


def _by_bare_letter(text: str, n: int) -> str | None:
    return _single(_valid(_BARE.findall(text), n))


def extract_choice(text: str | None, options: list[str]) -> str | None:
    """The option letter (``"A"``..) that ``text`` picks among ``options``, or ``None`` when it picks none or
    is ambiguous. ``text`` may be a whole response: the last ``<answer>...</answer>`` is used when present."""
    if not text or not options:
        return None
    answer = extract_answer_span(text)
    n = len(options)
    try:
        for rule in (_by_letter_form, _by_answer_phrase, _by_option_phrase, _by_paren):
            letter = rule(answer, n)
            if letter is not None:
                return letter
        letter = _by_option_text(answer, options)
        if letter is not None:
            return letter
        return _by_bare_letter(answer, n)
    except Ambiguous:
        return None
