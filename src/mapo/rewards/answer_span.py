"""Find the final answer inside a model response: the text of the last ``<answer>...</answer>``."""

from __future__ import annotations

import re

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_OPEN = re.compile(r"<answer>", re.IGNORECASE)


def extract_answer_span(text: str) -> str:
    """The content of the last ``<answer>...</answer>`` (stripped); an unclosed final ``<answer>`` yields the
    text after it (generation may stop on the ``</answer>`` stop string); without tags, the whole text."""
    spans = _ANSWER.findall(text)
    if spans:
        return spans[-1].strip()
    opens = list(_OPEN.finditer(text))
    if opens:
        return text[opens[-1].end():].strip()
    return text.strip()
