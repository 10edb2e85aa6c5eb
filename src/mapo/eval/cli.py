"""`mapo eval` and `mapo view` (issue: evaluation). Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from mapo.data.inputs import InputError, check_policy_dir  # light, and loaded at start-up by mapo.user_errors

_P = "(default: from the protocol)"


def _protocol(model: Path, protocol_file: Path | None, overrides: dict):
    """The protocol of the run: ``--protocol`` YAML, else ``protocol.yaml`` beside the checkpoint, else the
    defaults of ``ProtocolConfig``; command-line options given explicitly override it."""
    from pydantic import (
        ValidationError,  # here, like every command's heavier imports: `mapo --help` stays fast
    )

    from mapo.agent.protocol import ProtocolConfig

    if protocol_file is not None and not protocol_file.is_file():
        raise InputError(f"--protocol {protocol_file}: no such file; pass a ProtocolConfig YAML "
                         f"(e.g. the protocol.yaml a training run writes beside its model)")
    source = protocol_file or next((p for p in [model / "protocol.yaml"] if p.is_file()), None)
    try:
        base = yaml.safe_load(source.read_text()) or {} if source else {}
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(base, dict):
        raise InputError(f"{source}: expected a mapping of ProtocolConfig fields, got {type(base).__name__}")
    try:
        return ProtocolConfig.model_validate({**base, **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"protocol ({source or 'options'}): {problems}; valid fields: "
                         f"{', '.join(ProtocolConfig.model_fields)}") from exc


def eval_command(
    model: Annotated[Path, typer.Option(help="Local policy checkpoint directory (Hugging Face Qwen-VL).")],
    bench: Annotated[str, typer.Option(help="vstar | hrbench (4k/8k) | mme_realworld | world | deepeyes.")],
    data: Annotated[Path, typer.Option(help="Benchmark file (.tsv/.parquet) or folder (V*, world).")],
    out: Annotated[Path | None, typer.Option(help="Results folder (default: eval_results/<bench>).")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Samples per item: Avg@k (e.g. 8).")] = 1,
    temperature: Annotated[float | None, typer.Option(help=f"Sampling temperature, 0 = greedy {_P}.")] = None,
    max_turns: Annotated[int | None, typer.Option(help=f"Most assistant turns per episode {_P}.")] = None,
    image_max_pixels: Annotated[int | None, typer.Option(help=f"Pixel budget of the task image {_P}.")] = None,
    crop_max_pixels: Annotated[int | None, typer.Option(help=f"Pixel budget of each crop {_P}.")] = None,
    mode: Annotated[str | None, typer.Option(help=f"label | description {_P}.")] = None,
    protocol_file: Annotated[Path | None, typer.Option("--protocol", help="ProtocolConfig YAML.")] = None,
    verifier: Annotated[Path | None, typer.Option(
        help="Verifier: a VerifierConfig YAML, or an embedded-verifier folder. Adds alignment scores.")] = None,
    reward_preset: Annotated[str, typer.Option(
        help="Reward recorded per sample: accuracy | deepeyes | cof.")] = "accuracy",
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate at most this many items.")] = None,
    batch_items: Annotated[int, typer.Option(min=1, help="Items rolled out together.")] = 4,
    max_decode_pixels: Annotated[int | None, typer.Option(
        help="Refuse images above this many pixels (default: mapo.data.images.DEFAULT_DECODE_LIMIT); also "
             "replaces Pillow's own bomb limit.")] = None,
    allow_absolute_paths: Annotated[bool, typer.Option(
        "--allow-absolute-paths", help="Read image paths written as absolute paths in the data (off: every "
                                       "path must stay inside the dataset's folder).")] = False,
    seed: Annotated[int, typer.Option(help="Torch seed for sampling.")] = 0,
    device: Annotated[str, typer.Option(help="Torch device of the policy: auto (cuda when a GPU is visible), "
                                        "cpu, cuda:0, ...")] = "auto",
    dtype: Annotated[str, typer.Option(help="Weights' dtype: auto (bfloat16 on a GPU, float32 on CPU), float32, "
                                       "bfloat16, float16.")] = "auto",
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard results in --out instead of resuming.")] = False,
    no_media: Annotated[bool, typer.Option("--no-media", help="Do not save thumbnails and crops.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    fast_generation: Annotated[bool, typer.Option(
        help="Generation's own speed-ups (in-place K/V, grouped KV heads, mapo's decode loop; the same tokens as "
             "Hugging Face's path, tested). --no-fast-generation runs Hugging Face's own.")] = True,
) -> None:
    """Evaluate a model on a benchmark with the agent loop; resumable (finished items are skipped)."""
    from mapo.data.benchmarks import get_reader
    from mapo.data.images import DEFAULT_DECODE_LIMIT
    from mapo.eval.evaluate import evaluate_policy
    from mapo.eval.runner import RESULTS_NAME, EvalConfig
    from mapo.eval.table import print_summary
    from mapo.rewards import RewardConfig

    get_reader(bench)  # an unknown --bench fails here, naming the choices
    check_policy_dir(model, "--model")
    out = out or Path("eval_results") / bench
    protocol = _protocol(model, protocol_file, {"temperature": temperature, "max_turns": max_turns, "mode": mode,
                                                    "image_max_pixels": image_max_pixels,
                                                    "crop_max_pixels": crop_max_pixels})
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
    if protocol_file is None and not (model / "protocol.yaml").is_file():
        typer.echo(f"note: {model} has no protocol.yaml; using the default protocol (pass --protocol FILE)",
                   err=True)
    summary = evaluate_policy(model, bench, data, out, protocol=protocol, cfg=cfg, reward_cfg=reward_cfg,
                              verifier_cfg=verifier_cfg, seed=seed, device=device, dtype=dtype, fresh=fresh,
                              max_decode_pixels=max_decode_pixels or DEFAULT_DECODE_LIMIT,
                              allow_absolute_paths=allow_absolute_paths, progress=progress, log=typer.echo,
                              fast_generation=fast_generation)
    print_summary(summary)
    typer.echo(f"results: {out / RESULTS_NAME}\nsummary: {out / 'summary.json'}\nview:    mapo view {out}")


def view_command(
    results: Annotated[Path, typer.Argument(help="A results folder of `mapo eval` (or its results.jsonl).")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default: index.html beside the results).")] = None,
    max_items: Annotated[int | None, typer.Option(help="Show at most this many items.")] = None,
    embed: Annotated[bool, typer.Option("--embed", help="Inline the images (one self-contained file).")] = False,
) -> None:
    """Render evaluation results as a static HTML trajectory viewer."""
    from mapo.eval.viewer import write_viewer

    try:
        path = write_viewer(results, out, max_items=max_items, embed=embed)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="RESULTS") from exc
    typer.echo(f"viewer: {path}\nopen:   file://{path.resolve()}")
