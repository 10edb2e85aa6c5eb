"""A small self-contained HTML summary: tables and the PNG plots beside it."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def fmt(value: Any) -> str:
    """Numbers to 3 significant digits, None to an em dash, the rest as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table_html(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_summary(path: str | Path, *, title: str, sections: Sequence[tuple[str, str]],
                  images: Sequence[str | Path] = ()) -> Path:
    """Write ``path`` (HTML). ``sections``: (heading, inner HTML) pairs; ``images``: PNGs, linked relative to
    the HTML file so the folder can be moved as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, inner in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{inner}")
    for img in images:
        rel = Path(img).resolve().relative_to(path.parent.resolve()) if Path(img).is_absolute() else Path(img)
        parts.append(f'<figure><img src="{html.escape(str(rel))}" alt="{html.escape(Path(img).stem)}"></figure>')
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}th{background:#f3f3f3}img{max-width:100%}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return path
