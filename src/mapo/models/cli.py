"""`mapo model ...` commands: build the tiny model zoo's tokenizer and Qwen-VL checkpoint from the world's text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

model_app = typer.Typer(no_args_is_help=True)


def world_texts(world: Path, max_tasks: int = 600, seed: int = 0) -> list[str]:
    """The text a model of the world will read and write: questions, options, prompts, expert turns.

    Expert turns are written in every protocol mode (label / description, pixel / relative boxes) and with
    every imperfection, so the tokenizer covers whatever SFT or RL will show the model. Held-out caption
    templates stay out (the verifier's unseen wordings)."""
    import random

    from mapo.agent.protocol import ProtocolConfig, user_text
    from mapo.data.expert import ExpertConfig, expert_turns
    from mapo.data.parquet import load_tasks

    tasks = load_tasks(_train_split(world), limit=max_tasks)
    rng = random.Random(seed)
    experts = [
        ExpertConfig(
            refine_rate=0.5, no_zoom_rate=0.1, elsewhere_rate=0.1, wrong_label_rate=0.1, guess_rate=0.1
        ),
        ExpertConfig(mode="description", coordinates="relative", elsewhere_rate=0.1),
    ]
    texts: list[str] = []
    for task in tasks:
        for coords in ("pixel", "relative"):
            texts.append(
                user_text(
                    task.question,
                    task.options_block(),
                    task.image.width,
                    task.image.height,
                    ProtocolConfig(coordinates=coords),
                )
            )
        for cfg in experts:
            texts.extend(expert_turns(task, rng, cfg))
    return texts


def world_dialogues(world: Path, max_tasks: int = 600, seed: int = 0) -> list[tuple[str, list[str]]]:
    """(user text, expert assistant turns) of the world's train tasks — the text-only warm-up's examples.

    Label mode with pixel boxes (with the demo's imperfection rates) and description mode with relative boxes,
    each user text written for its coordinate system."""
    import random

    from mapo.agent.protocol import ProtocolConfig, user_text
    from mapo.data.expert import ExpertConfig, expert_turns
    from mapo.data.parquet import load_tasks

    tasks = load_tasks(_train_split(world), limit=max_tasks)
    rng = random.Random(seed + 1)
    experts = [ExpertConfig(no_zoom_rate=0.1, elsewhere_rate=0.15, wrong_label_rate=0.1, guess_rate=0.1),
               ExpertConfig(mode="description", coordinates="relative", elsewhere_rate=0.1)]
    out: list[tuple[str, list[str]]] = []
    for task in tasks:
        for cfg in experts:
            user = user_text(task.question, task.options_block(), task.image.width, task.image.height,
                             ProtocolConfig(coordinates=cfg.coordinates))
            out.append((user, expert_turns(task, rng, cfg)))
    return out


def world_image_statistics(world: Path, max_tasks: int = 64) -> tuple[list[float], list[float]]:
    """Per-channel pixel mean and std of the views an agent sees of the world's first ``max_tasks`` train
    tasks (whole images and zooms on targets): the tiny model's input normalisation."""
    from mapo.data.parquet import load_tasks
    from mapo.models.image_stats import agent_views, view_statistics

    return view_statistics(agent_views(load_tasks(_train_split(world), limit=max_tasks)))


def _train_split(world: Path) -> Path:
    path = world / "train.parquet"
    if not path.is_file():
        raise typer.BadParameter(
            f"{path} does not exist; make the world first: mapo world make --out {world}",
            param_hint="--world",
        )
    return path


@model_app.command("init")
def init_command(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the Hugging Face checkpoint into.")],
    world: Annotated[
        Path,
        typer.Option(
            "--world",
            help="World directory made by `mapo world make` (its train split is the tokenizer's corpus).",
        ),
    ],
    family: Annotated[
        str, typer.Option(help="Architecture: qwen2_5_vl, qwen2_vl or qwen3_vl.")
    ] = "qwen2_5_vl",
    size: Annotated[
        str, typer.Option(help="tiny (hidden 128, 2 layers) or small (hidden 256, 4 layers).")
    ] = "tiny",
    vocab_size: Annotated[
        int, typer.Option(help="Byte-level BPE vocabulary (special tokens on top).")
    ] = 1024,
    max_tasks: Annotated[int, typer.Option(help="Train tasks whose text trains the tokenizer.")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the random weights and of the expert texts.")] = 0,
    warmup_steps: Annotated[int, typer.Option(
        help="Text-only steps that teach the language model to repeat what the question names, before any "
             "image (mapo.models.warmup; 0 = none).")] = 300,
    image_stats: Annotated[bool, typer.Option(
        "--image-stats/--family-image-stats",
        help="Normalise pixels with the world's own mean and std (mapo.models.image_stats) instead of the "
             "family's photo constants, under which the tiny vision tower learnt nothing.")] = True,
    vision_patch: Annotated[int | None, typer.Option(
        help="Vision patch side in pixels (default: the family's, 14 or 16). 8 reads detail better at 4x the "
             "image tokens (scripts/vision_learnability.py).")] = None,
) -> None:
    """Build a tiny Qwen-VL checkpoint and tokenizer as a local Hugging Face directory."""
    from rich.console import Console

    from mapo.models.zoo import FAMILIES, SIZES, build_tiny_model, train_tokenizer

    if family not in FAMILIES:
        raise typer.BadParameter(
            f"unknown family {family!r}; use one of {', '.join(FAMILIES)}", param_hint="--family"
        )
    if size not in SIZES:
        raise typer.BadParameter(f"unknown size {size!r}; use one of {', '.join(SIZES)}", param_hint="--size")
    console = Console(stderr=True)
    with console.status("collecting the world's text"):
        texts = world_texts(world, max_tasks=max_tasks, seed=seed)
    with console.status(f"training a {vocab_size}-token byte-level BPE on {len(texts)} texts"):
        tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    mean = std = None
    if image_stats:
        with console.status("measuring the world's pixel statistics"):
            mean, std = world_image_statistics(world)
        typer.echo(f"image normalisation from the world's views: mean {mean}, std {std}")
    with console.status(f"building a {size} {family} checkpoint"):
        path = build_tiny_model(out, tokenizer, family=family, size=size, seed=seed, image_mean=mean,
                                image_std=std, vision_patch=vision_patch)
    if warmup_steps > 0:
        from mapo.models.warmup import warm_up_language_model

        summary = warm_up_language_model(path, world_dialogues(world, max_tasks=max_tasks, seed=seed),
                                         steps=warmup_steps, seed=seed)
        typer.echo(f"LM warm-up: {warmup_steps} steps, loss {summary['first_loss']} -> {summary['last_loss']} "
                   f"in {summary['seconds']} s")
    n_tokens = sum(len(tokenizer(t)["input_ids"]) for t in texts[:200])
    n_chars = sum(len(t) for t in texts[:200])
    typer.echo(
        f"{path}: {family}/{size}, vocabulary {len(tokenizer)} tokens, "
        f"{n_chars / max(n_tokens, 1):.2f} characters per token on the world's text"
    )
