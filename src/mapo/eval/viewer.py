"""A static HTML trajectory viewer for ``mapo eval`` results: per item and sample, the image with every zoom
box (and the ground-truth targets) drawn, the crops, each label/description with its alignment score, the
answer and whether it was right; filters for correct / wrong / zoom missed the target / failed items.

Boxes are drawn in an SVG whose viewBox is the original image size, so boxes stay in original pixels whatever
the thumbnail size. Images are referenced relative to the HTML file (or embedded with ``embed=True``).
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from mapo.eval.records import ResultsFile
from mapo.eval.runner import RESULTS_NAME, SUMMARY_NAME

_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#222}
header{position:sticky;top:0;background:#1f2937;color:#fff;padding:10px 16px;z-index:2}
header h1{font-size:18px;margin:0 0 6px 0} header .stats{font-size:13px;opacity:.9}
.filters button{margin:6px 6px 0 0;padding:4px 10px;border-radius:12px;border:1px solid #888;background:#374151;
color:#fff;cursor:pointer;font-size:13px} .filters button.on{background:#2563eb;border-color:#2563eb}
main{padding:12px 16px} .card{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;margin:0 0 14px 0;
padding:12px;display:flex;gap:16px;border-left:6px solid #9ca3af} .card.correct{border-left-color:#16a34a}
.card.wrong{border-left-color:#dc2626} .card.failed{border-left-color:#6b7280}
.pic{flex:0 0 420px} .pic svg{width:420px;height:auto;background:#ddd;border-radius:4px}
.info{flex:1;min-width:0;font-size:14px} .q{font-weight:600;margin-bottom:4px}
.opts span{display:inline-block;margin:2px 8px 2px 0;padding:1px 6px;border-radius:4px;background:#eef}
.opts span.gold{background:#bbf7d0} .opts span.picked{outline:2px solid #dc2626}
.opts span.gold.picked{outline:2px solid #16a34a}
.turn{display:flex;gap:10px;align-items:flex-start;margin:6px 0;padding:6px;background:#fafafa;border-radius:4px}
.turn img{max-width:140px;max-height:140px;border:3px solid #999;border-radius:3px}
.turn .txt{font-size:12.5px;white-space:pre-wrap;word-break:break-word;max-height:9em;overflow:auto;flex:1}
.claim{font-weight:600} .score{font-family:monospace;padding:0 4px;border-radius:3px;background:#fde68a}
.tag{font-size:11px;padding:1px 5px;border-radius:3px;margin-left:4px;background:#e5e7eb}
.tag.hit{background:#bbf7d0} .tag.miss{background:#fecaca} .err{color:#b91c1c}
.verdict{font-weight:700} .verdict.ok{color:#16a34a} .verdict.no{color:#dc2626}
"""

_JS = """
const buttons=[...document.querySelectorAll('.filters button')];
function apply(f){buttons.forEach(b=>b.classList.toggle('on',b.dataset.f===f));
 document.querySelectorAll('.card').forEach(c=>{const ok=f==='all'||c.dataset[f]==='1';c.style.display=ok?'':'none';});
 document.getElementById('shown').textContent=[...document.querySelectorAll('.card')].filter(c=>c.style.display!=='none').length;}
buttons.forEach(b=>b.addEventListener('click',()=>apply(b.dataset.f)));
apply(new URLSearchParams(location.search).get('filter')||'all');
"""


def _src(rel: str | None, results_dir: Path, html_dir: Path, embed: bool) -> str | None:
    if not rel:
        return None
    path = results_dir / rel
    if embed:
        if not path.is_file():
            return None
        return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
    return Path(os.path.relpath(path, html_dir)).as_posix()


def _fmt_score(value) -> str:
    return "" if value is None else f'<span class="score" title="verifier alignment">{value:+.2f}</span>'


def _svg(record: dict, sample: dict, image_src: str | None) -> str:
    w, h = record.get("image_size") or [100, 100]
    stroke = max(w, h) / 250  # ~1.7 screen px at the 420 px display width, whatever the image size
    parts = [f'<svg viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">']
    if image_src:
        parts.append(f'<image href="{html.escape(image_src)}" x="0" y="0" width="{w}" height="{h}"/>')
    for i, (x1, y1, x2, y2) in enumerate(record.get("targets") or []):
        parts.append(f'<rect x="{x1}" y="{y1}" width="{x2 - x1}" height="{y2 - y1}" fill="none" stroke="#22c55e" '
                     f'stroke-width="{stroke}" stroke-dasharray="{3 * stroke},{2 * stroke}"><title>target '
                     f'{html.escape((record.get("target_names") or [""] * (i + 1))[i] or str(i))}</title></rect>')
    for n, turn in enumerate(t for t in sample.get("turns", []) if t.get("box_executed")):
        x1, y1, x2, y2 = turn["box_executed"]
        color = _COLORS[n % len(_COLORS)]
        parts.append(f'<rect x="{x1}" y="{y1}" width="{x2 - x1}" height="{y2 - y1}" fill="{color}" '
                     f'fill-opacity="0.08" stroke="{color}" stroke-width="{stroke}"><title>zoom {turn["index"]}: '
                     f'{html.escape(turn.get("claim") or "")}</title></rect>')
        parts.append(f'<text x="{x1 + 2 * stroke}" y="{y1 + 10 * stroke}" fill="{color}" font-size="{9 * stroke}" '
                     f'font-weight="bold">{turn["index"]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _turns_html(sample: dict, results_dir: Path, html_dir: Path, embed: bool) -> str:
    rows = []
    n_zoom = 0
    for turn in sample.get("turns", []):
        crop = _src(turn.get("crop"), results_dir, html_dir, embed)
        color = _COLORS[n_zoom % len(_COLORS)] if turn.get("box_executed") else "#999"
        n_zoom += bool(turn.get("box_executed"))
        img = f'<img src="{html.escape(crop)}" style="border-color:{color}" alt="crop">' if crop else ""
        head = f'<b>turn {turn["index"]}</b> <span class="tag">{html.escape(turn.get("kind", ""))}</span>'
        if turn.get("hit") is not None:
            head += f'<span class="tag {"hit" if turn["hit"] else "miss"}">{"on target" if turn["hit"] else "off target"}'
            head += f' IoU {turn.get("iou", 0):.2f}</span>'
        claim = turn.get("claim")
        if claim is not None or turn.get("alignment") is not None:
            head += f'<div><span class="claim">“{html.escape(claim or "")}”</span> {_fmt_score(turn.get("alignment"))}</div>'
        if turn.get("error"):
            head += f'<div class="err">{html.escape(str(turn["error"]))}</div>'
        rows.append(f'<div class="turn">{img}<div class="txt">{head}<div>{html.escape(turn.get("text", ""))}'
                    f'</div></div></div>')
    return "".join(rows)


def _card(record: dict, sample: dict | None, results_dir: Path, html_dir: Path, embed: bool) -> str:
    failed = bool(record.get("error"))
    correct = bool(sample and sample.get("correct")) and not failed
    missed = bool(sample and sample.get("zoom_hit") is False)
    cls = "failed" if failed else "correct" if correct else "wrong"
    data = (f'data-correct="{int(correct)}" data-wrong="{int(not correct and not failed)}" '
            f'data-missed="{int(missed)}" data-failed="{int(failed)}"')
    title = f'{html.escape(str(record["id"]))} · {html.escape(record.get("category") or "")}'
    if sample is not None and sample.get("sample"):
        title += f' · sample {sample["sample"]}'
    if failed:
        return (f'<div class="card failed" {data}><div class="info"><div class="q">{title}</div>'
                f'<div class="err">item failed: {html.escape(str(record["error"]))}</div></div></div>')
    letters = "ABCDEFGHIJ"
    opts = "".join(
        f'<span class="{"gold" if letters[i] == record.get("answer") else ""}'
        f'{" picked" if letters[i] == sample.get("choice") else ""}">({letters[i]}) {html.escape(o)}</span>'
        for i, o in enumerate(record.get("options") or []))
    image_src = _src(record.get("image"), results_dir, html_dir, embed)
    verdict = (f'<span class="verdict {"ok" if correct else "no"}">{"✓ correct" if correct else "✗ wrong"}</span>')
    hit = sample.get("zoom_hit")
    hit_tag = "" if hit is None else (f'<span class="tag {"hit" if hit else "miss"}">'
                                      f'{"zooms covered the target" if hit else "zoom missed the target"}</span>')
    answer = html.escape(str(sample.get("prediction"))) if sample.get("prediction") is not None else "<i>no answer</i>"
    return (f'<div class="card {cls}" {data}><div class="pic">{_svg(record, sample, image_src)}</div>'
            f'<div class="info"><div class="q">{title}</div><div>{html.escape(record.get("question") or "")}</div>'
            f'<div class="opts">{opts}</div>{_turns_html(sample, results_dir, html_dir, embed)}'
            f'<div>answer: <b>{answer}</b> → {html.escape(str(sample.get("choice")))} '
            f'(gold {html.escape(str(record.get("answer")))}) {verdict} {hit_tag}</div></div></div>')


def render_viewer(records: list[dict], summary: dict | None, results_dir: Path, html_dir: Path,
                  embed: bool = False, title: str = "mapo eval") -> str:
    """The viewer page as one HTML string."""
    cards = []
    for record in records:
        for sample in (record.get("samples") or [None]):
            cards.append(_card(record, sample, results_dir, html_dir, embed))
    stats = ""
    if summary:
        acc = summary.get("accuracy")
        stats = (f'{summary.get("n_items")} items · k={summary.get("k")} · accuracy '
                 f'{"-" if acc is None else f"{100 * acc:.1f}%"} · failed {summary.get("n_errors")}')
        hit = (summary.get("boxes") or {}).get("hit_rate")
        if hit is not None:
            stats += f" · zoom hit rate {100 * hit:.1f}%"
        align = (summary.get("alignment") or {}).get("mean")
        if align is not None:
            stats += f" · alignment {align:+.3f}"
    buttons = "".join(f'<button data-f="{f}">{label}</button>' for f, label in
                      [("all", "all"), ("correct", "correct"), ("wrong", "wrong"),
                       ("missed", "zoom missed the target"), ("failed", "failed items")])
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{_CSS}</style></head><body><header><h1>{html.escape(title)}</h1>'
            f'<div class="stats">{html.escape(stats)} · showing <span id="shown">{len(cards)}</span></div>'
            f'<div class="filters">{buttons}</div></header><main>{"".join(cards)}</main>'
            f'<script>{_JS}</script></body></html>')


def write_viewer(results: str | Path, out: str | Path | None = None, *, max_items: int | None = None,
                 embed: bool = False) -> Path:
    """Write the viewer for a results folder (or its ``results.jsonl``); returns the HTML path."""
    results = Path(results)
    results_dir = results if results.is_dir() else results.parent
    jsonl = results / RESULTS_NAME if results.is_dir() else results
    if not jsonl.is_file():
        raise FileNotFoundError(f"no results at {jsonl}; run `mapo eval ... --out DIR` first and pass DIR")
    records = ResultsFile(jsonl).read()[:max_items]
    summary_path = results_dir / SUMMARY_NAME
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    out = Path(out) if out else results_dir / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"mapo eval — {summary.get('bench', '')}" if summary else "mapo eval"
    out.write_text(render_viewer(records, summary, results_dir, out.parent, embed=embed, title=title),
                   encoding="utf-8")
    return out
