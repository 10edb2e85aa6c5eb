"""DeepEyes-47k-schema parquet: write world tasks, read them back — and read the real DeepEyes parquet too.

Columns (verl RLHF format, as DeepEyes-Datasets-47k): ``prompt`` (chat messages: system, user with an
``<image>`` placeholder), ``images`` (list of ``{"bytes": png}``), ``data_source``, ``reward_model``
(``{"ground_truth", "style"}``), ``extra_info`` (``question``, ``index`` and, for our world, ``options``,
``answer``, ``targets`` (pixel boxes), ``target_names``, ``category``, ``objects``, ``query``, ``id``) and
``env_name``. One loader, ``load_tasks``, serves both.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from mapo.agent.protocol import ProtocolConfig, system_prompt, user_text  # data -> agent only for wording
from mapo.data.images import DEFAULT_DECODE_LIMIT, decode_image, encode_png
from mapo.data.task import LETTERS, Box, Task

ENV_NAME = "visual_toolbox_v2"
REQUIRED_COLUMNS = ("prompt", "images", "reward_model")

_OBJECT = pa.struct(
    [
        ("box", pa.list_(pa.int64())),
        ("shape", pa.string()),
        ("colour", pa.string()),
        ("glyph", pa.string()),
        ("pattern", pa.string()),  # the fill pattern of a patterned object (null for a plain one)
        ("size", pa.int64()),
        ("role", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("images", pa.list_(pa.struct([("bytes", pa.binary())]))),
        ("data_source", pa.string()),
        ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("question", pa.string()),
                    ("index", pa.int64()),
                    ("id", pa.string()),
                    ("options", pa.list_(pa.string())),
                    ("answer", pa.string()),
                    ("targets", pa.list_(pa.list_(pa.float64()))),
                    ("target_names", pa.list_(pa.string())),
                    ("category", pa.string()),
                    ("objects", pa.list_(_OBJECT)),
                    ("query", pa.string()),
                ]
            ),
        ),
        ("env_name", pa.string()),
    ]
)


def prompt_messages(task: Task) -> list[dict]:
    """The DeepEyes-style chat prompt of a task: the agent protocol's system text, then the user turn."""
    cfg = ProtocolConfig()
    user = user_text(task.question, task.options_block(), task.image.width, task.image.height, cfg)
    return [
        {"role": "system", "content": system_prompt(cfg)},
        {"role": "user", "content": f"<image>\n{user}"},
    ]


def task_row(task: Task, index: int) -> dict:
    """One parquet row (a plain dict matching ``SCHEMA``)."""
    objects = [
        {k: obj.get(k) for k in ("box", "shape", "colour", "glyph", "pattern", "size", "role")}
        for obj in task.extra.get("objects", [])
    ]
    return {
        "prompt": prompt_messages(task),
        "images": [{"bytes": encode_png(task.image)}],
        "data_source": task.source or "mapo_world",
        "reward_model": {"ground_truth": task.answer, "style": "rule"},
        "extra_info": {
            "question": task.question,
            "index": index,
            "id": task.id,
            "options": list(task.options),
            "answer": task.answer,
            "targets": [b.as_list() for b in task.targets],
            "target_names": list(task.target_names),
            "category": task.category,
            "objects": objects,
            "query": json.dumps(task.extra.get("query", {}), sort_keys=True),
        },
        "env_name": ENV_NAME,
    }


def write_rows(rows: Iterable[dict], path: str | Path, rows_per_group: int = 128) -> Path:
    """Write rows made by ``task_row`` (any iterable: consumed lazily, ``rows_per_group`` at a time) to
    ``path``, atomically (a reader never sees a half-written file). The same rows give a byte-identical file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    iterator = iter(rows)
    written = 0
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
        while chunk := list(itertools.islice(iterator, rows_per_group)):
            writer.write_table(pa.Table.from_pylist(chunk, schema=SCHEMA))
            written += len(chunk)
        if written == 0:
            writer.write_table(SCHEMA.empty_table())
    tmp.replace(path)
    return path


def write_tasks(tasks: Iterable[Task], path: str | Path, rows_per_group: int = 128) -> Path:
    """Write ``tasks`` to ``path`` as DeepEyes-schema parquet (``extra_info.index`` = position in the file)."""
    return write_rows((task_row(t, i) for i, t in enumerate(tasks)), path, rows_per_group)


_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[).:]\s*(.+?)\s*$")

#: Where DeepEyes-47k's own answer-format instructions begin in a question; the text from there on is cut,
#: since our protocol's prompt gives its own (``RowConfig.instruction_markers``).
DEEPEYES_INSTRUCTIONS = (
    "Think first, call **image_zoom_in_tool** if needed",
    "Think first, call",
    "Format strictly as",
    "Output the thinking process in <think>",
)


class RowConfig(BaseModel):
    """How a DeepEyes-schema row becomes a task (``data.rows`` in a train config)."""

    model_config = ConfigDict(extra="forbid")

    question: Literal["protocol", "dataset"] = Field(
        "protocol", description="protocol: cut the dataset's own format instructions (instruction_markers) from "
        "the question so only our protocol's prompt tells the model how to answer; dataset: keep the question "
        "text as stored (the <image> placeholder is always removed: our prompt places the image)")
    instruction_markers: list[str] = Field(
        default_factory=lambda: list(DEEPEYES_INSTRUCTIONS),
        description="case-insensitive phrases where the dataset's own instructions begin (cut to the end)")
    allow_absolute_paths: bool = Field(
        False, description="read images[].path when it is absolute (off: paths must be relative to the "
        "parquet's folder and may not escape it)")
    max_decode_pixels: int = Field(DEFAULT_DECODE_LIMIT, ge=1, description="refuse images above this many pixels")


def clean_question(text: str, cfg: RowConfig) -> str:
    """The question without ``<image>`` placeholders and, in ``protocol`` mode, without the dataset's own
    format instructions (from the first ``instruction_markers`` phrase to the end)."""
    text = text.replace("<image>", "")
    if cfg.question == "protocol":
        lower = text.lower()
        cuts = [i for m in cfg.instruction_markers if m and (i := lower.find(m.lower())) >= 0]
        if cuts:
            text = text[: min(cuts)]
    return text.strip()


def parse_options(text: str) -> tuple[str, list[str]]:
    """Split ``(A) ...`` option lines (also ``A. ...``, ``A) ...``) from a question text.

    Returns (question without the option lines, options). Options must run A, B, C, ... consecutively;
    otherwise none are returned (free-form).
    """
    kept, options = [], []
    for line in text.splitlines():
        match = _OPTION_LINE.match(line)
        if match and match.group(1) == LETTERS[len(options)]:
            options.append(match.group(2))
        else:
            kept.append(line)
    if len(options) < 2:
        return text.strip(), []
    question = "\n".join(line for line in kept if not line.strip().lower().startswith(("options", "choices")))
    return question.strip(), options


def _user_text(prompt: list[dict] | None) -> str:
    for message in prompt or []:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # OpenAI-style content parts
                content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _row_task(row: dict, i: int, path: Path, cfg: RowConfig | None = None) -> Task:
    """One row as a ``Task`` (its image decoded). Raises ``ValueError`` (``ImageError``, ``UnsafePathError``)
    naming the file and the row when the row cannot be used."""
    # here, not at the top: the mapo.data.benchmarks package imports this module (training_parquet)
    from mapo.data.benchmarks.paths import safe_join

    cfg = cfg or RowConfig()
    images = row.get("images") or []
    if not images:
        raise ValueError(
            f"{path}: row {i} has no image in column 'images'; each row needs at least one "
            f"{{'bytes': ...}} entry"
        )
    first = images[0]
    data = first.get("bytes") if isinstance(first, dict) else first
    if data is None and isinstance(first, dict) and first.get("path"):
        data = safe_join(path.parent, str(first["path"]), allow_absolute=cfg.allow_absolute_paths)
    image = decode_image(data, name=f"{path} row {i} images[0]", max_decode_pixels=cfg.max_decode_pixels)
    extra = dict(row.get("extra_info") or {})
    reward = row.get("reward_model") or {}
    ground_truth = str(reward.get("ground_truth", "")).strip()
    source = str(row.get("data_source") or "")
    if extra.get("options"):  # our world: everything is explicit
        question, options, answer = (
            extra["question"],
            list(extra["options"]),
            extra.get("answer") or ground_truth,
        )
    else:  # real DeepEyes-47k: options (if any) live in the question text
        question, options = parse_options(clean_question(str(extra.get("question") or _user_text(row.get("prompt"))),
                                                         cfg))
        answer = ground_truth
        if options and answer not in LETTERS[: len(options)]:
            letter = re.fullmatch(r"\(?([A-J])\)?\.?", answer)
            matches = [k for k, opt in enumerate(options) if opt.strip().lower() == answer.lower()]
            answer = letter.group(1) if letter else (LETTERS[matches[0]] if matches else answer)
    index = extra.get("index", i)
    query = extra.get("query")
    task_extra = {
        k: v
        for k, v in extra.items()
        if k not in ("question", "options", "answer", "targets", "target_names", "category", "id", "query")
    }
    if query:
        task_extra["query"] = json.loads(query) if isinstance(query, str) else query
    if isinstance(task_extra.get("objects"), list):
        task_extra["objects"] = [{k: v for k, v in o.items() if v is not None} for o in task_extra["objects"]]
    task_extra["env_name"] = row.get("env_name")
    return Task(
        id=str(extra.get("id") or f"{source or 'parquet'}-{index}"),
        image=image,
        question=question,
        answer=answer,
        options=options,
        category=str(extra.get("category") or ""),
        source=source,
        targets=[Box(*map(float, b)) for b in extra.get("targets") or []],
        target_names=list(extra.get("target_names") or []),
        extra=task_extra,
    )


def load_tasks(path: str | Path, limit: int | None = None) -> list[Task]:
    """Read a DeepEyes-schema parquet (the world's splits or the real DeepEyes-47k files) as ``Task`` objects.

    ``limit``: read only the first rows. Raises ``FileNotFoundError`` / ``ValueError`` naming the file and the
    missing column or bad row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; make the world with `mapo world make --out DIR` or pass "
            f"a DeepEyes-style parquet file"
        )
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path} is not a readable parquet file ({exc})") from exc
    columns = set(parquet.schema_arrow.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {', '.join(missing)} of the DeepEyes schema (has: "
            f"{', '.join(sorted(columns))}); expected prompt, images, data_source, reward_model, "
            f"extra_info, env_name"
        )
    tasks: list[Task] = []
    for batch in parquet.iter_batches(batch_size=64):
        for row in batch.to_pylist():
            if limit is not None and len(tasks) >= limit:
                return tasks
            tasks.append(_row_task(row, len(tasks), path))
    return tasks
