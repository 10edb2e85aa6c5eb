"""`mapo demo` (what `make demo` runs): world -> tiny model -> SFT -> verifier -> RL with MAPO -> evaluation on
the test split -> a report folder, and a final table. Each step writes into its own folder under ``out_dir``
with a stamp of its inputs, and is skipped when the stamp matches: a second run reuses what exists.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from mapo.train.config import Section, SFTConfig, TrainConfig
from mapo.train.stamps import is_done, mark_done

log = logging.getLogger("mapo.demo")


class DemoConfig(Section):
    """`mapo demo`: the whole pipeline on the embedded default, sized for ~25 minutes on 2 idle CPU cores."""

    out_dir: str = Field("runs/demo", description="Where every step writes (world/, verifier/, model/, sft/, rl/, "
                                                  "eval/, report/).")
    seed: int = Field(0, description="Seed of the world, model, SFT and RL.")
    threads: int | None = Field(1, description="torch CPU threads (None: torch's default). 1 by default: the tiny "
                                "model gains little from 2 threads, and on a busy 2-core machine 2 threads ran "
                                "5-28x slower than 1 (benchmarks/README.md).")
    world: dict[str, Any] = Field(default_factory=lambda: {
        "n_train": 600, "n_val": 100, "n_test": 100, "canvas_width": 1024, "canvas_height": 1024, "clutter": 24,
        "families": ["attribute"], "attribute_asks": ["pattern"], "unique_target_colour": True,
        "target_size_min": 80, "target_size_max": 100},
                                  description="WorldConfig fields (see `mapo world make --help`).")
    verifier: dict[str, Any] = Field(default_factory=lambda: {"steps": 200},
                                     description="mapo.verifier.train TrainConfig fields.")
    family: str = Field("qwen3_vl", description="Tiny policy architecture: qwen2_5_vl | qwen2_vl | qwen3_vl.")
    size: str = Field("tiny", description="Tiny policy size: tiny | small.")
    vocab_size: int = Field(1024, description="Tokenizer vocabulary (byte-level BPE trained on the world).")
    warmup_steps: int = Field(200, ge=0, description="Text-only LM warm-up steps before SFT (mapo.models.warmup): "
                              "without them the tiny model never learned to repeat the object the question names.")
    vision_warmup_steps: int = Field(200, ge=0, description="Steps pretraining the vision tower alone on labelled "
                                     "zooms (mapo.models.warmup.warm_up_vision): through the language model alone "
                                     "it learnt nothing of a zoom's pattern.")
    grounding_steps: int = Field(400, ge=0, description="Image grounding warm-up steps after the LM warm-up "
                                 "(mapo.models.warmup.warm_up_grounding: 'Where is the red square?' -> its zoom "
                                 "box): without them every SFT zoom went to one place. Needs sft.expert.box_side.")
    grounding_flips: bool = Field(True, description="Also ask the grounding questions on mirrored train images "
                                  "(mapo.models.world_warmup.world_grounding: 4x the examples, no new rendering): val crop-hit "
                                  "0.21 -> 0.37 after SFT (seed 0).")
    freeze_vision_tower: bool = Field(True, description="After its warm-up, keep the vision tower fixed in the "
                                      "grounding warm-up, SFT and RL (mapo.models.freeze; its merger trains): "
                                      "trained on, it lost the pattern it had learnt to read.")
    vision_patch: int | None = Field(None, description="Vision patch side in pixels (None: the family's). 8 reads "
                                     "detail better at 4x the image tokens (scripts/vision_learnability.py).")
    image_stats: bool = Field(True, description="Normalise the tiny model's pixels with the world's own mean/std "
                              "(mapo.models.image_stats); under Qwen's photo constants its vision tower learnt nothing.")
    protocol: dict[str, Any] = Field(default_factory=lambda: {"max_turns": 4, "max_new_tokens_per_turn": 96,
                                                              "max_response_tokens": 448,
                                                              "crop_min_pixels": 224 * 224,
                                                              "tools_prompt": "compact"},
                                     description="ProtocolConfig fields shared by SFT, RL and evaluation.")
    sft: dict[str, Any] = Field(default_factory=lambda: {
        "epochs": 6, "batch_size": 16, "micro_batch_size": 16,
        "expert": {"no_zoom_rate": 0.1, "elsewhere_rate": 0.15, "wrong_label_rate": 0.1, "guess_rate": 0.1,
                   "box_side": 256, "refine_rate": 0.0, "answer_with": "text"},
        "optim": {"lr": 1e-3, "warmup_steps": 10, "schedule": "constant"}},
        description="SFTConfig fields (model, data and paths are filled in by the demo).")
    rl: dict[str, Any] = Field(default_factory=lambda: {
        "rollout": {"group_size": 8, "prompts_per_step": 8},
        "algorithm": {"estimator": "mapo", "ppo_epochs": 2, "mini_batch_groups": 4}, "optim": {"lr": 1e-4},
        "reward": {"accuracy_weight": 0.9, "format_weight": 0.1},
        "data": {"eval_limit": 100, "eval_temperatures": [0.0]},
        "run": {"total_steps": 20, "save_every": 10, "eval_every": 10}},
        description="TrainConfig fields (model, train data, verifier and paths are filled in by the demo; "
                    "data.eval defaults to the val split). The recipe is measured in docs/results.md.")
    eval_limit: int = Field(100, ge=1, description="Test-split tasks evaluated (SFT and RL models alike).")
    eval_temperature: float = Field(0.0, ge=0, description="Sampling temperature of the evaluation (0: greedy).")


def _stamp_of(path: Path) -> str:
    try:
        return json.loads((path / ".mapo-stamp.json").read_text())["fingerprint"]
    except (OSError, KeyError, json.JSONDecodeError):
        return ""


def _step(name: str, out: Path, inputs: dict[str, Any], build) -> None:
    """Run ``build()`` unless ``out`` already holds a finished result for ``inputs``."""
    if is_done(out, inputs):
        log.info("[%s] reusing %s", name, out)
        return
    start = time.perf_counter()
    log.info("[%s] building %s", name, out)
    build()
    mark_done(out, inputs)
    log.info("[%s] done in %.0f s", name, time.perf_counter() - start)


def sft_config(cfg: DemoConfig, root: Path) -> SFTConfig:
    data = json.loads(json.dumps(cfg.sft))  # a deep copy
    data.update(seed=cfg.seed, train=str(root / "world" / "train.parquet"), out_dir=str(root / "sft"),
                protocol=cfg.protocol)
    data.setdefault("model", {})["path"] = str(root / "model")
    data["model"].setdefault("freeze_vision_tower", cfg.freeze_vision_tower)
    return SFTConfig.model_validate(data)


def rl_config(cfg: DemoConfig, root: Path) -> TrainConfig:
    data = json.loads(json.dumps(cfg.rl))
    data["seed"] = cfg.seed
    data.setdefault("model", {})["path"] = str(root / "sft" / "final")
    data["model"].setdefault("freeze_vision_tower", cfg.freeze_vision_tower)
    data.setdefault("data", {}).update(train=str(root / "world" / "train.parquet"))
    data["data"].setdefault("eval", str(root / "world" / "val.parquet"))  # the learning curves (run.eval_every)
    data["verifier"] = {"backend": "embedded", "path": str(root / "verifier")}
    data.setdefault("rollout", {})["protocol"] = {**cfg.protocol, **data.get("rollout", {}).get("protocol", {})}
    data.setdefault("run", {})["out_dir"] = str(root / "rl")
    return TrainConfig.model_validate(data)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run (or reuse) every step; returns the report's summary (final evaluation table, wall time)."""
    t0 = time.perf_counter()
    root = prepare(cfg)
    ver_dir = root / "verifier"

    # 5. RL with MAPO
    rl_cfg = rl_config(cfg, root)
    rl_inputs = {"rl": rl_cfg.model_dump(mode="json"), "sft": _stamp_of(root / "sft"),
                 "verifier": _stamp_of(ver_dir)}
    _step("rl", root / "rl", rl_inputs, lambda: _run_rl(rl_cfg))

    # 6. evaluation of both models on the test split
    results = {}
    for name, model in (("SFT", root / "sft" / "final"), ("SFT + RL (MAPO)", root / "rl" / "final")):
        results[name] = evaluate(cfg, model, root / "world" / "test.parquet", root / "eval" / model.parent.name,
                                 ver_dir, model_id=f"{model.parent.name}:{_stamp_of(model.parent)}")

    # 7. report
    from mapo.report.run_report import write_run_report
    from mapo.train.metrics_log import read_metrics

    def records(run: Path) -> list[dict[str, Any]]:
        return read_metrics(run) if (run / "metrics.jsonl").exists() else []

    return write_run_report(root / "report", sft=records(root / "sft"), rl=records(root / "rl"), evals=results,
                            minutes=(time.perf_counter() - t0) / 60)


def prepare(cfg: DemoConfig) -> Path:
    """Steps 1-4 (world, tiny model, SFT, verifier), each reused when already built; returns ``out_dir``."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    root = Path(cfg.out_dir)
    root.mkdir(parents=True, exist_ok=True)

    # 1. world
    from mapo.data.world.config import WorldConfig

    world_cfg = WorldConfig.model_validate({"seed": cfg.seed, **cfg.world})
    world_dir = root / "world"
    _step("world", world_dir, {"world": world_cfg.model_dump()}, lambda: make_world(world_cfg, world_dir))

    # 2. tiny model
    model_dir = root / "model"
    model_inputs = {"family": cfg.family, "size": cfg.size, "vocab": cfg.vocab_size, "seed": cfg.seed,
                    "warmup_steps": cfg.warmup_steps, "tokenizer": "qwen-split-digits", "image_stats": cfg.image_stats,
                    "vision_patch": cfg.vision_patch, "warmup_expert": cfg.sft.get("expert"),
                    "grounding_steps": cfg.grounding_steps, "vision_warmup_steps": cfg.vision_warmup_steps,
                    "protocol": cfg.protocol, "freeze_vision_tower": cfg.freeze_vision_tower,
                    "grounding_flips": cfg.grounding_flips,
                    "world": _stamp_of(world_dir)}
    _step("model", model_dir, model_inputs, lambda: init_model(world_dir, model_dir, cfg))

    # 3. cold-start SFT
    sft_cfg = sft_config(cfg, root)
    _step("sft", root / "sft", {"sft": sft_cfg.model_dump(mode="json"), "model": _stamp_of(model_dir)},
          lambda: _run_sft(sft_cfg))

    # 4. verifier (only RL and evaluation need it)
    from mapo.verifier.train import TrainConfig as VerifierTrainConfig

    ver_cfg = VerifierTrainConfig.model_validate({"world_seed": cfg.seed, **cfg.verifier})
    ver_dir = root / "verifier"
    _step("verifier", ver_dir, {"verifier": ver_cfg.model_dump()}, lambda: train_verifier(ver_cfg, ver_dir))

    return root


def make_world(world_cfg, out: Path) -> None:
    from mapo.data.world.export import write_world

    write_world(world_cfg, out)  # parallel rendering, byte-identical to a single process


def train_verifier(ver_cfg, out: Path) -> None:
    from mapo.verifier.train import train_and_save

    summary = train_and_save(ver_cfg, out)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1, default=str))


def init_model(world_dir: Path, out: Path, cfg: DemoConfig) -> None:
    from mapo.data.expert import ExpertConfig
    from mapo.models.world_warmup import warm_up_for_world, world_image_statistics, world_texts
    from mapo.models.zoo import build_tiny_model, train_tokenizer

    if out.exists():
        shutil.rmtree(out)
    tokenizer = train_tokenizer(world_texts(world_dir, seed=cfg.seed), vocab_size=cfg.vocab_size)
    mean, std = world_image_statistics(world_dir) if cfg.image_stats else (None, None)
    build_tiny_model(out, tokenizer, family=cfg.family, size=cfg.size, seed=cfg.seed, image_mean=mean,
                     image_std=std, vision_patch=cfg.vision_patch)
    warm_up_for_world(out, world_dir, lm_steps=cfg.warmup_steps, vision_steps=cfg.vision_warmup_steps,
                      grounding_steps=cfg.grounding_steps,
                      expert=ExpertConfig.model_validate(cfg.sft.get("expert", {})),  # what SFT will teach
                      max_pixels=cfg.protocol.get("image_max_pixels", 224 * 224), seed=cfg.seed,
                      freeze_vision_tower=cfg.freeze_vision_tower, grounding_flips=cfg.grounding_flips)


def _run_sft(sft_cfg: SFTConfig) -> None:
    from mapo.train.config import load_config
    from mapo.train.sft import run_sft

    out = Path(sft_cfg.out_dir)
    resume = _same_config(out, sft_cfg, SFTConfig, load_config)
    if not resume and out.exists():
        shutil.rmtree(out)
    run_sft(sft_cfg, resume=resume)


def _run_rl(rl_cfg: TrainConfig) -> None:
    from mapo.train.config import load_config
    from mapo.train.rl import RLTrainer

    out = Path(rl_cfg.run.out_dir)
    resume = _same_config(out, rl_cfg, TrainConfig, load_config)
    if not resume and out.exists():
        shutil.rmtree(out)
    RLTrainer(rl_cfg, resume=resume).train()


def _same_config(out: Path, cfg, cls, load_config) -> bool:
    """An interrupted run in ``out`` with the same config can be resumed (its inputs are stamped upstream)."""
    path = out / "config.yaml"
    try:
        return path.exists() and load_config(cls, path) == cfg
    except Exception:  # noqa: BLE001 - an unreadable old config just means: start clean
        return False


def evaluate(cfg: DemoConfig, model: Path, data: Path, out: Path, verifier_dir: Path, model_id: str) -> dict:
    """The evaluation runner of `mapo eval` on the test split (resumable, reused when already complete)."""
    from mapo.agent.protocol import ProtocolConfig
    from mapo.eval.evaluate import evaluate_policy
    from mapo.eval.runner import EvalConfig
    from mapo.verifier import VerifierConfig

    protocol = ProtocolConfig(**{**cfg.protocol, "temperature": cfg.eval_temperature})
    inputs = {"model": model_id, "limit": cfg.eval_limit, "protocol": protocol.model_dump(), "data": str(data)}
    summary_path = out / "summary.json"
    if is_done(out, inputs) and summary_path.exists():
        return json.loads(summary_path.read_text())
    summary = evaluate_policy(model, "world", data, out, protocol=protocol,
                              cfg=EvalConfig(limit=cfg.eval_limit, save_media=True),
                              verifier_cfg=VerifierConfig(backend="embedded", path=verifier_dir),
                              seed=cfg.seed, fresh=True, log=log.info)
    from mapo.eval.runner import RESULTS_NAME
    from mapo.report.run_report import first_turn_call_rate

    summary.setdefault("tools", {})["first_turn_call_rate"] = first_turn_call_rate(out / RESULTS_NAME)
    summary_path.write_text(json.dumps(summary, indent=1, default=str))
    mark_done(out, inputs)
    return summary

