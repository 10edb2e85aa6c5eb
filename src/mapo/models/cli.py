"""`mapo model ...` commands: build the tiny model zoo's tokenizer and Qwen-VL checkpoint from the world's text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

model_app = typer.Typer(no_args_is_help=True)


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
    vision_warmup_steps: Annotated[int, typer.Option(
        help="Steps pretraining the vision tower alone on labelled zooms of the targets (0 = none; the demo: "
             "200).")] = 0,
    grounding_steps: Annotated[int, typer.Option(
        help="Image steps on a question -> the target's zoom box (as --grounding-prompt asks it), and on reading "
             "zooms (0 = none; the demo: 400). Needs --box-side.")] = 0,
    grounding_prompt: Annotated[str, typer.Option(
        help="where: ask 'Where is the red square? Give its zoom box.' alone; agent: ask in the agent's own prompt "
             "(system prompt with the tool, image, question and options) and answer with the expert's first turn, "
             "which SFT then starts from (the demo's; docs/results.md section 13).")] = "where",
    tools_prompt: Annotated[str, typer.Option(
        help="With --grounding-prompt agent: the protocol's tools prompt, hermes or compact (use the SFT's; the "
             "demo: compact).")] = "hermes",
    grounding_shifts: Annotated[int, typer.Option(
        help="Also ask each grounding question on that many copies of its image rolled by whole grid strides, "
             "the box moved with the target (0 = none).")] = 0,
    grounding_target: Annotated[float | None, typer.Option(
        help="Go on past --grounding-steps until the held-out hit rate (the world's val targets, checked every 100 "
             "steps) reaches this, up to --grounding-max-steps (default: stop at --grounding-steps).")] = None,
    grounding_max_steps: Annotated[int, typer.Option(
        help="Cap on the grounding steps when --grounding-target is set.")] = 0,
    box_side: Annotated[int, typer.Option(
        help="Side of the expert's grid zoom boxes the warm-ups teach (ExpertConfig.box_side; use the SFT's, e.g. "
             "256; 0 = the LM warm-up's jittered boxes).")] = 0,
    answer_with: Annotated[str, typer.Option(
        help="letter or text: what the reading examples put in <answer> (ExpertConfig.answer_with; use the SFT's).")
    ] = "letter",
    grounding_flips: Annotated[bool, typer.Option(
        "--grounding-flips/--no-grounding-flips",
        help="Also ask the grounding questions on the train images mirrored left-right, top-bottom and both (4x "
             "the examples, no new rendering; the demo: on).")] = False,
    freeze_vision_tower: Annotated[bool, typer.Option(
        "--freeze-vision-tower/--train-vision-tower",
        help="Keep the vision tower fixed during the grounding warm-up (its merger trains): the pattern the "
             "vision warm-up taught it survives (the demo: frozen; pass model.freeze_vision_tower to SFT and RL "
             "too).")] = False,
) -> None:
    """Build a tiny Qwen-VL checkpoint and tokenizer as a local Hugging Face directory."""
    from rich.console import Console

    from mapo.models.world_warmup import train_split, warm_up_for_world, world_image_statistics, world_texts
    from mapo.models.zoo import FAMILIES, SIZES, build_tiny_model, train_tokenizer

    if family not in FAMILIES:
        raise typer.BadParameter(
            f"unknown family {family!r}; use one of {', '.join(FAMILIES)}", param_hint="--family"
        )
    if size not in SIZES:
        raise typer.BadParameter(f"unknown size {size!r}; use one of {', '.join(SIZES)}", param_hint="--size")
    if grounding_prompt not in ("where", "agent"):
        raise typer.BadParameter(f"unknown grounding prompt {grounding_prompt!r}; use where or agent",
                                 param_hint="--grounding-prompt")
    if tools_prompt not in ("hermes", "compact"):
        raise typer.BadParameter(f"unknown tools prompt {tools_prompt!r}; use hermes or compact",
                                 param_hint="--tools-prompt")
    from mapo.agent.protocol import ProtocolConfig

    protocol = ProtocolConfig(tools_prompt=tools_prompt) if grounding_prompt == "agent" else None
    try:
        train_split(world)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="--world") from exc
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
    from mapo.data.expert import ExpertConfig

    try:
        expert = ExpertConfig(box_side=box_side, answer_with=answer_with) if box_side or answer_with != "letter" \
            else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if grounding_steps and box_side <= 0:
        raise typer.BadParameter("--grounding-steps needs --box-side > 0", param_hint="--box-side")
    done = warm_up_for_world(path, world, lm_steps=warmup_steps, vision_steps=vision_warmup_steps,
                             grounding_steps=grounding_steps, expert=expert, seed=seed,
                             freeze_vision_tower=freeze_vision_tower, grounding_flips=grounding_flips,
                             grounding_target=grounding_target, grounding_max_steps=grounding_max_steps,
                             grounding_shifts=grounding_shifts, grounding_protocol=protocol)
    for stage, summary in done.items():
        held_out = "".join(f", {key.replace('_', ' ').replace('held out', 'held-out')} {summary[key]}"
                           for key in ("held_out_accuracy", "held_out_hit_rate") if key in summary)
        typer.echo(f"{'LM' if stage == 'lm' else stage} warm-up: {summary['steps']} steps, loss {summary['first_loss']} -> "
                   f"{summary['last_loss']} in {summary['seconds']} s{held_out}")
    n_tokens = sum(len(tokenizer(t)["input_ids"]) for t in texts[:200])
    n_chars = sum(len(t) for t in texts[:200])
    typer.echo(
        f"{path}: {family}/{size}, vocabulary {len(tokenizer)} tokens, "
        f"{n_chars / max(n_tokens, 1):.2f} characters per token on the world's text"
    )
