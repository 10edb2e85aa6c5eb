"""`mapo eval` and `mapo view` (issue: evaluation). Heavy imports happen inside the commands."""

from __future__ import annotations

import shutil
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
    import torch

    from mapo.agent.rollout import RolloutEngine
    from mapo.data.benchmarks import BenchmarkFormatError, count_items, iter_benchmark
    from mapo.data.images import DEFAULT_DECODE_LIMIT
    from mapo.eval.records import ResultsFile
    from mapo.eval.runner import RESULTS_NAME, EvalConfig, run_evaluation
    from mapo.eval.settings import SettingsMismatch, check_or_write_settings
    from mapo.eval.table import print_summary
    from mapo.models.hf_qwen import load_policy
    from mapo.rewards import RewardConfig

    out = out or Path("eval_results") / bench
    if fresh and out.exists():
        for name in (RESULTS_NAME, "summary.json", "run.json", "media", "index.html"):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    protocol = _protocol(model, protocol_file, dict(temperature=temperature, max_turns=max_turns, mode=mode,
                                                    image_max_pixels=image_max_pixels,
                                                    crop_max_pixels=crop_max_pixels))
    reward_cfg = RewardConfig.preset(reward_preset)
    verifier_cfg = None
    if verifier is not None:
        from mapo.verifier.config import VerifierConfig

        verifier_cfg = (VerifierConfig.from_yaml(verifier) if verifier.is_file()
                        else VerifierConfig(backend="embedded", path=verifier))
    settings = {"bench": bench, "data": str(data.resolve()), "model": str(model.resolve()), "k": k,
                "protocol": protocol.model_dump(), "reward": reward_cfg.model_dump(),
                "verifier": verifier_cfg.model_dump(mode="json") if verifier_cfg else None, "seed": seed}
    try:
        check_or_write_settings(out, settings)
        done = ResultsFile(out / RESULTS_NAME).finished_ids()
        items = iter_benchmark(bench, data, max_decode_pixels=max_decode_pixels or DEFAULT_DECODE_LIMIT,
                               skip=done)
        n_items = count_items(bench, data)
    except (SettingsMismatch, BenchmarkFormatError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if done:
        typer.echo(f"resuming: {len(done)} item(s) already in {out / RESULTS_NAME} are skipped")
    torch.manual_seed(seed)
    backend = load_policy(model, device=device)
    engine = RolloutEngine(backend, protocol_cfg=protocol)
    scorer = None
    if verifier_cfg is not None:
        from mapo.verifier import load_verifier

        scorer = load_verifier(verifier_cfg)
    cfg = EvalConfig(k=k, batch_items=batch_items, limit=limit, save_media=not no_media)
    summary = run_evaluation(engine, items, out, bench=bench, cfg=cfg, reward_cfg=reward_cfg, verifier=scorer,
                             progress=progress, run_info=settings,
                             total=None if n_items is None else max(0, n_items - len(done)))
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
