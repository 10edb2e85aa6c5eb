"""`mapo sft`, `mapo train`, `mapo demo`, `mapo compare` (issue: the trainer).

Every option is checked against the typed configs in ``mapo.train.config`` (and demo/compare configs):
``--config FILE`` gives a YAML, ``--set key=value`` (repeatable, dotted keys) overrides it, ``--show-config``
prints every key with its default and description.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config (see configs/).", exists=True, dir_okay=False)
SetOpt = typer.Option(None, "--set", "-s", help="Override a config key: --set algorithm.beta=0.2 (repeatable).")
ResumeOpt = typer.Option(False, "--resume", help="Continue from the newest checkpoint in the run directory.")
ShowOpt = typer.Option(False, "--show-config", help="Print every config key, its default and what it does; exit.")
DryRunOpt = typer.Option(False, "--dry-run", help="Print the memory/compute estimate from the checkpoint's "
                         "config.json (no weights loaded) and exit.")
DataOpt = typer.Option(None, "--data", help="Your own trajectories: .jsonl or .parquet of chat messages with "
                       "images (docs/sft_data.md); sets the config's `data`.")
MemOpt = typer.Option(None, "--device-memory", help="Memory of the target GPU for --dry-run, e.g. 80GB "
                      "(default: the visible GPU's).")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _load(cls, config: Path | None, overrides: list[str] | None):
    """The validated config; a ``ConfigError`` prints as one line (``mapo.user_errors``)."""
    from mapo.train.config import load_config

    return load_config(cls, config, overrides or [])


def _show(cls) -> None:
    from rich.console import Console
    from rich.table import Table

    from mapo.train.config import describe_config

    table = Table("key", "default", "description", title=cls.__doc__ or cls.__name__)
    for key, default, doc in describe_config(cls, defaults=cls()):
        table.add_row(key, default, doc)
    Console().print(table)


def _dry_run(cfg, device_memory: str | None, rl: bool) -> None:
    """Print the estimate of ``cfg``'s run (mapo.train.memory) and exit with 1 when it does not fit."""
    from mapo.train import memory

    try:  # (a typo in protocol / verifier / reward already failed when the config loaded)
        shape, work, est = (memory.estimate_train if rl else memory.estimate_sft)(cfg)
        budget = memory.parse_bytes(device_memory) if device_memory else None
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    name = "--device-memory" if budget else None
    if budget is None:
        budget, name = memory.device_memory(cfg.model.device)
    tips = memory.advice(shape, work, est, budget, gradient_checkpointing=cfg.model.gradient_checkpointing,
                         freeze_vision_tower=cfg.model.freeze_vision_tower, rl=rl) if budget else []
    typer.echo(memory.report(shape, work, est, budget=budget, device_name=name, suggestions=tips))
    if tips:
        raise typer.Exit(1)


def sft_command(config: Path | None = ConfigOpt, set_: list[str] | None = SetOpt, resume: bool = ResumeOpt,
                show_config: bool = ShowOpt, dry_run: bool = DryRunOpt, device_memory: str | None = MemOpt,
                data: Path | None = DataOpt) -> None:
    """Cold-start SFT on expert trajectories or your own (loss on assistant tokens only)."""
    from mapo.train.config import SFTConfig

    if show_config:
        return _show(SFTConfig)
    if data is not None:
        set_ = [*(set_ or []), f"data={data}"]
    cfg = _load(SFTConfig, config, set_)
    if dry_run:
        return _dry_run(cfg, device_memory, rl=False)
    from mapo.train.preflight import check_sft_inputs

    check_sft_inputs(cfg, resume=resume)  # before the model loads
    _setup_logging()
    from mapo.train.sft import run_sft

    typer.echo(f"SFT model written to {run_sft(cfg, resume=resume)}")


def train_command(config: Path | None = ConfigOpt, set_: list[str] | None = SetOpt, resume: bool = ResumeOpt,
                  show_config: bool = ShowOpt, dry_run: bool = DryRunOpt, device_memory: str | None = MemOpt) -> None:
    """RL with GRPO / RLOO / MAPO / MAPO-turn; metrics to out_dir/metrics.jsonl and TensorBoard."""
    from mapo.train.config import TrainConfig

    if show_config:
        return _show(TrainConfig)
    from mapo.train.preflight import check_train_inputs

    cfg = _load(TrainConfig, config, set_)
    if dry_run:
        return _dry_run(cfg, device_memory, rl=True)
    check_train_inputs(cfg, resume=resume)  # before the policy and the verifier load
    _setup_logging()
    from mapo.train.rl import train

    typer.echo(f"RL model written to {train(cfg, resume=resume)}")


SeedsOpt = typer.Option(None, "--seeds", help="Run the whole demo once per seed (e.g. 0-4 or 0,2,7) and print one "
                        "table of their val/test accuracies; the config's own seed runs in out_dir (reusing "
                        "`mapo demo`'s run), the others in <out_dir>_seeds/seed<N>.")


def demo_command(config: Path | None = ConfigOpt, set_: list[str] | None = SetOpt,
                 show_config: bool = ShowOpt, seeds: str | None = SeedsOpt) -> None:
    """World -> verifier -> tiny model -> SFT -> RL (MAPO) -> test evaluation -> report; reuses finished steps."""
    from mapo.train import demo

    if seeds is None:
        return _pipeline(demo.DemoConfig, demo.run_demo, "demo.yaml", config, set_, show_config)
    from mapo.train import demo_seeds

    wanted = demo_seeds.parse_seeds(seeds)
    return _pipeline(demo.DemoConfig, lambda cfg: demo_seeds.run_seeds(cfg, wanted), "demo.yaml", config, set_,
                     show_config)


def compare_command(config: Path | None = ConfigOpt, set_: list[str] | None = SetOpt,
                    show_config: bool = ShowOpt) -> None:
    """GRPO vs MAPO vs MAPO-turn from one SFT checkpoint, same rollout budget, several seeds: table + plots."""
    from mapo.train import compare

    _pipeline(compare.CompareConfig, compare.run_compare, "compare.yaml", config, set_, show_config)


def _pipeline(cls, run, default_name: str, config: Path | None, set_: list[str] | None, show_config: bool) -> None:
    """`mapo demo` / `mapo compare`: show the config's keys, or load it (``--config``, else
    ``configs/<default_name>`` of a checkout, else the built-in defaults) and run."""
    if show_config:
        return _show(cls)
    _setup_logging()
    run(_load(cls, config if config is not None else _default_config(default_name), set_))
    return None


def _default_config(name: str) -> Path | None:
    """configs/<name> of the working directory when present (a checkout), else the built-in defaults."""
    path = Path("configs") / name
    return path if path.is_file() else None
