"""`mapo eval` and `mapo view` (issue: evaluation). Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _protocol(model: Path, protocol_file: Optional[Path], overrides: dict):
    """The protocol of the run: ``--protocol`` YAML, else ``protocol.yaml`` beside the checkpoint, else the
    defaults of ``ProtocolConfig``; command-line options given explicitly override it."""
    import yaml

    from mapo.agent.protocol import ProtocolConfig

    source = protocol_file or next((p for p in [model / "protocol.yaml"] if p.is_file()), None)
    base = yaml.safe_load(source.read_text()) or {} if source else {}
    return ProtocolConfig.model_validate({**base, **{k: v for k, v in overrides.items() if v is not None}})


def eval_command(
    model: Path = typer.Option(..., "--model", help="Local policy checkpoint directory (Hugging Face Qwen-VL)."),
    bench: str = typer.Option(..., "--bench", help="vstar | hrbench (4k/8k) | mme_realworld | world | deepeyes."),
    data: Path = typer.Option(..., "--data", help="Benchmark file (.tsv/.parquet) or folder (V*)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default: eval_results/<bench>)."),
    k: int = typer.Option(1, "--k", min=1, help="Samples per item: Avg@k (e.g. 8)."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (0 = greedy) (default: from the protocol)."),
    max_turns: Optional[int] = typer.Option(None, help="Most assistant turns per episode (default: from the protocol)."),
    image_max_pixels: Optional[int] = typer.Option(None, help="Pixel budget of the task image (default: from the protocol)."),
    crop_max_pixels: Optional[int] = typer.Option(None, help="Pixel budget of each crop (default: from the protocol)."),
    mode: Optional[str] = typer.Option(None, help="label | description (default: from the protocol)."),
    protocol_file: Optional[Path] = typer.Option(None, "--protocol", help="ProtocolConfig YAML."),
    verifier: Optional[Path] = typer.Option(None, help="Verifier: a VerifierConfig YAML, or an embedded-verifier "
                                                       "folder. Adds alignment scores."),
    reward_preset: str = typer.Option("accuracy", help="Reward recorded per sample: accuracy | deepeyes | cof."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate at most this many items."),
    batch_items: int = typer.Option(4, min=1, help="Items rolled out together."),
    max_decode_pixels: Optional[int] = typer.Option(None, help="Refuse images above this many pixels "
                                                               "(default: mapo.data.images.DEFAULT_DECODE_LIMIT)."),
    seed: int = typer.Option(0, help="Torch seed for sampling."),
    device: str = typer.Option("cpu", help="Torch device of the policy, e.g. cuda:0."),
    fresh: bool = typer.Option(False, "--fresh", help="Discard results already in --out instead of resuming."),
    no_media: bool = typer.Option(False, "--no-media", help="Do not save thumbnails and crops for the viewer."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Evaluate a model on a benchmark with the agent loop; resumable (finished items are skipped)."""
    from mapo.data.benchmarks import BenchmarkFormatError
    from mapo.data.images import DEFAULT_DECODE_LIMIT
    from mapo.eval.evaluate import evaluate_policy
    from mapo.eval.runner import RESULTS_NAME, EvalConfig
    from mapo.eval.settings import SettingsMismatch
    from mapo.eval.table import print_summary
    from mapo.rewards import RewardConfig

    out = out or Path("eval_results") / bench
    protocol = _protocol(model, protocol_file, dict(temperature=temperature, max_turns=max_turns, mode=mode,
                                                    image_max_pixels=image_max_pixels,
                                                    crop_max_pixels=crop_max_pixels))
    try:
        reward_cfg = RewardConfig.preset(reward_preset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--reward-preset") from exc
    verifier_cfg = None
    if verifier is not None:
        from mapo.verifier.config import VerifierConfig

        verifier_cfg = (VerifierConfig.from_yaml(verifier) if verifier.is_file()
                        else VerifierConfig(backend="embedded", path=verifier))
    cfg = EvalConfig(k=k, batch_items=batch_items, limit=limit, save_media=not no_media)
    try:
        summary = evaluate_policy(model, bench, data, out, protocol=protocol, cfg=cfg, reward_cfg=reward_cfg,
                                  verifier_cfg=verifier_cfg, seed=seed, device=device, fresh=fresh,
                                  max_decode_pixels=max_decode_pixels or DEFAULT_DECODE_LIMIT,
                                  progress=progress, log=typer.echo)
    except (SettingsMismatch, BenchmarkFormatError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    print_summary(summary)
    typer.echo(f"results: {out / RESULTS_NAME}\nsummary: {out / 'summary.json'}\nview:    mapo view {out}")


def view_command(
    results: Path = typer.Argument(..., help="A results folder of `mapo eval` (or its results.jsonl)."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file (default: index.html beside the results)."),
    max_items: Optional[int] = typer.Option(None, help="Show at most this many items."),
    embed: bool = typer.Option(False, "--embed", help="Inline the images (one self-contained HTML file)."),
) -> None:
    """Render evaluation results as a static HTML trajectory viewer."""
    from mapo.eval.viewer import write_viewer

    try:
        path = write_viewer(results, out, max_items=max_items, embed=embed)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="RESULTS") from exc
    typer.echo(f"viewer: {path}\nopen:   file://{path.resolve()}")
