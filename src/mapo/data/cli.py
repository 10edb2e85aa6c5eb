"""`mapo world ...` commands: make the embedded visual-search world, and probe that it needs zooming."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated

import typer

world_app = typer.Typer(no_args_is_help=True)

_CONFIG_HELP = "YAML file of WorldConfig fields (see mapo.data.world.config)."
_SET_HELP = "Override one WorldConfig field, e.g. --set clutter=60 --set canvas_width=1536 (repeatable)."


@world_app.command("make")
def make_command(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for {train,val,test}.parquet and world.yaml.")
    ],
    config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    splits: Annotated[str, typer.Option(help="Comma-separated splits to write.")] = "train,val,test",
    workers: Annotated[
        int,
        typer.Option(
            help="Processes rendering and encoding tasks (0 = one per CPU, at "
            "most 4). The files are the same for any number."
        ),
    ] = 0,
) -> None:
    """Generate the embedded visual-search world as DeepEyes-schema parquet splits."""
    from mapo.data.world import load_world_config
    from mapo.data.world.export import write_world

    try:
        cfg = load_world_config(config, set_)
        names = tuple(s.strip() for s in splits.split(",") if s.strip())
        for split in names:
            cfg.split_size(split)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    start = time.perf_counter()
    paths = write_world(cfg, out, names, workers)
    for split, path in paths.items():
        typer.echo(f"{path}: {cfg.split_size(split)} tasks, {path.stat().st_size / 1e6:.1f} MB")
    typer.echo(f"world written to {out} in {time.perf_counter() - start:.1f} s")


@world_app.command("probe")
def probe_command(
    config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    n_train: Annotated[
        int, typer.Option(help="Train-split tasks whose objects train the patch readers.")
    ] = 250,
    n_eval: Annotated[int, typer.Option(help="Val-split tasks to score on.")] = 200,
    epochs: Annotated[int, typer.Option(help="Training epochs of each patch reader.")] = 20,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON here.")
    ] = None,
) -> None:
    """Measure how readable each attribute is from the whole image vs a ground-truth zoom (see probe.py)."""
    from mapo.data.world import load_world_config
    from mapo.data.world.probe import run_probe

    try:
        cfg = load_world_config(config, set_)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    report = run_probe(cfg, n_train=n_train, n_eval=n_eval, epochs=epochs)
    typer.echo(report.table())
    if json_out:
        json_out.write_text(json.dumps(dataclasses.asdict(report), indent=2))
