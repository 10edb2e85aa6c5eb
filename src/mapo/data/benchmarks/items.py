"""What every benchmark reader yields: a ``Task``, or an ``ItemError`` for an item that cannot be used."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ItemError:
    """One benchmark item that could not be loaded (corrupt image, path outside the root, ...).

    The evaluator records it as a failed item (scored wrong, never silently dropped) and carries on.
    """

    id: str
    message: str
    category: str = ""
    groups: dict[str, str] = field(default_factory=dict)
    """The scoring groups the item belongs to (e.g. HR-Bench's ``cycle_category``), so a failed item is scored
    wrong inside its own group instead of forming a group of its own."""


class BenchmarkFormatError(ValueError):
    """The file as a whole is not in the expected format; the message names the file and the fix."""


def image_item_error(item_id: str, exc: Exception, category: str = "",
                     groups: dict[str, str] | None = None) -> ItemError:
    """An ``ItemError`` for an image that failed to decode; a decode-limit refusal names the CLI flag too."""
    message = str(exc)
    if "decode limit" in message:
        message += " (mapo eval: --max-decode-pixels N)"
    return ItemError(item_id, message, category, dict(groups or {}))
