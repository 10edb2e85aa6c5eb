"""`mapo verifier ...` commands: train the embedded verifier, report its quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

verifier_app = typer.Typer(no_args_is_help=True)


def _overrides(pairs: list[str] | None, fields: dict, what: str) -> dict:
    """``key=value`` strings -> dict (values YAML-parsed), refusing keys the config does not have."""
    out = {}
    for text in pairs or []:
        if "=" not in text:
            raise typer.BadParameter(f"--set {text!r} is not key=value (e.g. --set steps=100)")
        key, value = text.split("=", 1)
        if key not in fields:
            raise typer.BadParameter(f"--set {key}: {what} has no such field; known: {', '.join(fields)}")
        out[key] = yaml.safe_load(value)
    return out


@verifier_app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", help="Directory for model.safetensors + verifier_config.json.")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML file of TrainConfig fields.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a TrainConfig field: key=value.")]
    = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Shortcut for --set steps=N.")] = None,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Write quality.json after training.")] = True,
) -> None:
    """Train the embedded LiT verifier (frozen MiniLM text tower + small vision tower) on world crops."""
    from mapo.verifier.train import TrainConfig, train_and_save

    data = yaml.safe_load(config.read_text()) if config else {}
    data.update(_overrides(set_, TrainConfig.model_fields, "TrainConfig"))
    if steps is not None:
        data["steps"] = steps
    summary = train_and_save(TrainConfig(**data), out)
    typer.echo(f"trained in {summary['seconds']} s ({summary['cpu_seconds']} CPU s), final loss "
               f"{summary['final_loss']}; saved to {out}")
    if evaluate:
        _report(out, "embedded", out / "quality.json", None)


@verifier_app.command("eval")
def eval_command(
    path: Annotated[Path, typer.Option("--path", help="Verifier directory (or open_clip checkpoint file).")],
    backend: Annotated[str, typer.Option("--backend", help="embedded | hf_clip | hf_siglip | open_clip.")]
    = "embedded",
    out: Annotated[Path | None, typer.Option("--out", help="Write the report as JSON here.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override an EvalConfig field: key=value.")]
    = None,
) -> None:
    """Quality report on held-out world pairs: AUCs (seen / unseen wordings, hit vs miss), retrieval,
    degenerate labels."""
    _report(path, backend, out, set_)


def _report(path: Path, backend: str, out: Path | None, set_: list[str] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from mapo.verifier import VerifierConfig, load_verifier
    from mapo.verifier.evaluate import EvalConfig, quality_report

    cfg = EvalConfig(**_overrides(set_, EvalConfig.model_fields, "EvalConfig"))
    verifier = load_verifier(VerifierConfig(backend=backend, path=path))
    report = quality_report(verifier, cfg)
    table = Table(title=f"verifier quality ({backend}: {path})")
    table.add_column("metric")
    table.add_column("seen templates", justify="right")
    table.add_column("unseen templates", justify="right")
    for key in report["seen_templates"]:
        table.add_row(key, f"{report['seen_templates'][key]:.3f}", f"{report['unseen_templates'][key]:.3f}")
    console = Console()
    console.print(table)
    r = report["retrieval"]
    console.print(f"retrieval top-1 among {r['group']}: crop->caption {r['crop_to_caption_top1']:.3f}, "
                  f"caption->crop {r['caption_to_crop_top1']:.3f} ({r['queries']} queries)")
    for label, d in report["degenerate_labels"].items():
        console.print(f"degenerate label {label!r}: mean {d['mean']:.3f}, beats {d['beats_true_caption_share']:.1%}"
                      " of true captions")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        console.print(f"report written to {out}")
