"""`mapo sft --data`: a user's own multi-turn trajectories with images (JSONL or parquet) as SFT samples.

Schema (docs/sft_data.md): one row per trajectory with ``messages``, a list of ``{"role", "content"}``;
``content`` is a string or a list of ``{"type": "text", "text"}`` / ``{"type": "image", "image"}`` items. An
image is a path (relative to the data file's folder, or absolute), base64 (optionally a ``data:`` URI) or
``{"bytes": ...}`` as Hugging Face datasets store it. A string content may instead hold ``<image>``
placeholders that take the row's ``images`` list in order (LLaMA-Factory / ms-swift style). Role ``tool`` (a
tool's response, e.g. the crop) becomes a user turn wrapped in ``<tool_response>``, as in mapo's protocol.

Loss mask: 1 on the tokens every assistant message writes (its content and end-of-turn token), 0 on the system
prompt, user turns and tool responses (their image pads included), exactly what RL trains.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from PIL import Image

from mapo.agent.protocol import ProtocolConfig
from mapo.data.benchmarks.paths import UnsafePathError, resolve_image
from mapo.data.images import DEFAULT_DECODE_LIMIT, ImageError, decode_image, fit_to_budget

ROLES = ("system", "user", "assistant", "tool")
PLACEHOLDER = "<image>"


class ChatDataError(ValueError):
    """A row of the user's data that cannot be used: the message names the file, the row and the fix."""


@dataclass
class ChatSample:
    """One tokenized trajectory, in the fields ``collate_trajectories`` reads."""

    prompt_ids: torch.Tensor  # [P] tokens before the first assistant message
    response_ids: torch.Tensor  # [L] the rest
    response_mask: torch.Tensor  # [L] 1 on assistant tokens
    images: list[Image.Image] = field(default_factory=list)
    row: int = 0


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 0, row) of a ``.jsonl`` or ``.parquet`` file."""
    path = Path(path)
    if not path.is_file():
        raise ChatDataError(f"sft data {path}: no such file; pass a .jsonl or .parquet of chat messages "
                            "(docs/sft_data.md)")
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        if "messages" not in table.column_names:
            raise ChatDataError(f"sft data {path}: no 'messages' column (has {table.column_names}); see "
                                "docs/sft_data.md")
        for i, row in enumerate(table.to_pylist()):
            yield i, row
        return
    if path.suffix not in (".jsonl", ".json"):
        raise ChatDataError(f"sft data {path}: unknown format {path.suffix!r}; use .jsonl or .parquet")
    with path.open() as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ChatDataError(f"sft data {path} row {i}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                    "each line must be one JSON object with 'messages'") from exc


def _image(ref: Any, base: Path, where: str, max_decode_pixels: int) -> Image.Image:
    if isinstance(ref, dict):
        ref = ref.get("bytes") or ref.get("path") or ref.get("image")
    if isinstance(ref, str) and ref.startswith("data:"):
        ref = ref.split(",", 1)[-1]
    if not isinstance(ref, (str, bytes, Path)):
        raise ChatDataError(f"{where}: image must be a path, base64 string or {{'bytes': ...}}, got "
                            f"{type(ref).__name__}")
    try:
        # the user's own file: absolute paths are read as written; relative ones from the file's folder, and
        # never outside it (the same gate as every dataset loader)
        ref = resolve_image(ref, base, allow_absolute=True) if isinstance(ref, str) else ref
        return decode_image(ref, name=where, max_decode_pixels=max_decode_pixels)
    except (ImageError, UnsafePathError) as exc:
        raise ChatDataError(f"{where}: {exc}" if isinstance(exc, UnsafePathError) else str(exc)) from exc


def parse_messages(row: dict[str, Any], base: Path, where: str, max_decode_pixels: int | None = None
                   ) -> tuple[list[dict], list[Image.Image]]:
    """Chat messages with ``{"type": "image"}`` items in the model's format, and the images in order."""
    limit = max_decode_pixels or DEFAULT_DECODE_LIMIT
    messages = row.get("messages")
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as exc:
            raise ChatDataError(f"{where}: 'messages' is a string that is not JSON ({exc.msg})") from exc
    if not isinstance(messages, list) or not messages:
        raise ChatDataError(f"{where}: needs a non-empty 'messages' list of {{'role', 'content'}}")
    pool = list(row.get("images") or [])
    out, images = [], []
    for k, msg in enumerate(messages):
        at = f"{where} message {k}"
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise ChatDataError(f"{at}: role must be one of {ROLES}, got "
                                f"{msg.get('role') if isinstance(msg, dict) else msg!r}")
        content = msg.get("content")
        if content is None:
            content = ""
        if isinstance(content, str):
            pieces = re.split(f"({re.escape(PLACEHOLDER)})", content)
            content = [{"type": "image"} if p == PLACEHOLDER else {"type": "text", "text": p} for p in pieces if p]
        items = []
        for item in content:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                items.append({"type": "text", "text": str(item.get("text", ""))})
            elif kind in ("image", "image_url"):
                ref = item.get("image", item.get("image_url"))
                if isinstance(ref, dict) and "url" in ref:
                    ref = ref["url"]
                if ref is None:
                    if not pool:
                        raise ChatDataError(f"{at}: an image placeholder without an image (the row's 'images' "
                                            "list is used up); give each <image> one entry in 'images'")
                    ref = pool.pop(0)
                images.append(_image(ref, base, f"{at} image", limit))
                items.append({"type": "image"})
            else:
                raise ChatDataError(f"{at}: content items must be {{'type': 'text'|'image', ...}}, got {item!r:.80}")
        role = msg["role"]
        if role == "tool":  # mapo's protocol: a tool's response is a user turn in <tool_response>
            role = "user"
            if not any(i.get("text", "").lstrip().startswith("<tool_response>") for i in items[:1]):
                items = [{"type": "text", "text": "<tool_response>"}, *items, {"type": "text", "text": "</tool_response>"}]
        out.append({"role": role, "content": items})
    if pool:
        raise ChatDataError(f"{where}: {len(pool)} image(s) in 'images' have no <image> placeholder; the counts "
                            "must match")
    if not any(m["role"] == "assistant" for m in out):
        raise ChatDataError(f"{where}: no assistant message, so nothing to learn; add the model's turns")
    return out, images


def tokenize_chat(backend, messages: list[dict], images: list[Image.Image], where: str, *,
                  image_max_pixels: int, crop_max_pixels: int) -> ChatSample:
    """Render ``messages`` with the backend's chat template, one message at a time, and mask all but the
    assistant messages' own tokens. The first image gets ``image_max_pixels``, later ones ``crop_max_pixels``."""
    shown = [fit_to_budget(im, image_max_pixels if k == 0 else crop_max_pixels, factor=backend.image_factor)
             for k, im in enumerate(images)]
    it = iter(shown)
    ids: list[int] = []
    mask: list[int] = []
    done = ""
    first_assistant = None
    for k, msg in enumerate(messages):
        assistant = msg["role"] == "assistant"
        # an assistant message's header (<|im_start|>assistant) is the template's generation prompt: not trained
        head = backend.render_chat(messages[:k], add_generation_prompt=True) if assistant else done
        full = backend.render_chat(messages[: k + 1], add_generation_prompt=False)
        if not head.startswith(done) or not full.startswith(head):
            raise ChatDataError(f"{where} message {k}: the chat template does not render messages as a growing "
                                "prefix; mapo sft --data needs a Qwen-style template")
        n_img = sum(1 for i in msg["content"] if i.get("type") == "image")
        seg_images = [next(it) for _ in range(n_img)]
        for text, trained, imgs in ((head[len(done):], False, []), (full[len(head):], assistant, seg_images)):
            if not text:
                continue
            try:
                piece = backend.encode(text, imgs)
            except ValueError as exc:
                raise ChatDataError(f"{where} message {k}: {exc}; each image item must render one image "
                                    "placeholder") from exc
            if trained and first_assistant is None:
                first_assistant = len(ids)
            ids += piece
            mask += [int(trained)] * len(piece)
        done = full
    start = first_assistant if first_assistant is not None else len(ids)
    return ChatSample(prompt_ids=torch.tensor(ids[:start], dtype=torch.long),
                      response_ids=torch.tensor(ids[start:], dtype=torch.long),
                      response_mask=torch.tensor(mask[start:], dtype=torch.long), images=shown)


def load_chat_samples(path: str | Path, backend, protocol: dict | None = None, *, max_rows: int | None = None,
                      max_tokens: int | None = None) -> list[ChatSample]:
    """Every row of ``path`` as a ``ChatSample`` (rows longer than ``max_tokens`` are left out with a warning).
    Raises ``ChatDataError`` naming the file, row and message of the first malformed row."""
    proto = ProtocolConfig(**(protocol or {}))
    path = Path(path)
    samples, too_long = [], 0
    for i, row in read_rows(path):
        if max_rows is not None and len(samples) >= max_rows:
            break
        where = f"sft data {path} row {i}"
        if not isinstance(row, dict):
            raise ChatDataError(f"{where}: must be an object with 'messages', got {type(row).__name__}")
        messages, images = parse_messages(row, path.parent, where)
        sample = tokenize_chat(backend, messages, images, where, image_max_pixels=proto.image_max_pixels,
                               crop_max_pixels=proto.crop_max_pixels)
        sample.row = i
        if max_tokens is not None and len(sample.prompt_ids) + len(sample.response_ids) > max_tokens:
            too_long += 1
            continue
        samples.append(sample)
    if too_long:
        logging.getLogger("mapo.sft").warning("sft data %s: %d row(s) longer than %d tokens left out", path,
                                              too_long, max_tokens)
    if not samples:
        raise ChatDataError(f"sft data {path}: no usable rows")
    return samples
