"""`mapo demo` (what `make demo` runs): world -> tiny model -> SFT -> RL with MAPO -> evaluation on the test
split -> a report folder, and a final table; the vision warm-up, the verifier's training and the SFT model's
evaluation run beside that chain in a second process (``parallel``, :mod:`mapo.train.side`). Each step writes
into its own folder under ``out_dir`` with a stamp of its inputs, and is skipped when the stamp matches: a
second run reuses what exists. The tiny model, the verifier and the SFT model of seed 0 of the default recipe ship
with mapo (``packaged``, :mod:`mapo.train.packaged`): with that recipe the demo installs them, evaluates the SFT
model and starts at RL.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import shutil
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, model_validator

from mapo.agent.protocol import ProtocolConfig
from mapo.data.expert import ExpertConfig
from mapo.data.parquet import load_tasks
from mapo.data.world.config import WorldConfig
from mapo.data.world.export import write_world
from mapo.eval.evaluate import evaluate_policy
from mapo.eval.records import ResultsFile
from mapo.eval.runner import RESULTS_NAME, EvalConfig
from mapo.eval.scoring import behaviour_statistics
from mapo.models.grounding_race import RaceBoard, adopt_grounding, check_steps, race_order_seed
from mapo.models.warmup import adopt_vision_tower
from mapo.models.world_warmup import (
    grounding_examples,
    grounding_warm_up,
    lm_warm_up,
    train_split,
    vision_warm_up,
    world_image_statistics,
    world_texts,
)
from mapo.models.zoo import build_tiny_model, train_tokenizer
from mapo.report.run_report import first_turn_call_rate, write_run_report
from mapo.train import packaged
from mapo.train.config import ConfigError, Section, SFTConfig, TrainConfig, load_config
from mapo.train.metrics_log import read_metrics
from mapo.train.rl import RLTrainer
from mapo.train.sft import run_sft
from mapo.train.side import MainThreads, SideProcess
from mapo.train.stamps import built_seconds, is_done, mark_done, mark_started, started_with
from mapo.verifier import VerifierConfig
from mapo.verifier.train import TrainConfig as VerifierTrainConfig
from mapo.verifier.train import train_and_save

log = logging.getLogger("mapo.demo")

#: The demo's defaults, written once: the packaged YAML (configs/demo.yaml links to it).
RECIPE = "demo.yaml"

#: Below this held-out hit rate the grounding warm-up is reported as not taken (it is 0.5-0.95 where it took).
GROUNDING_TOOK = 0.3

#: Below this crop-hit rate of the SFT model (test split) its grounding did not reach the agent's own zooms:
#: 0.13-0.21 on the seeds that failed after grounding, 0.33-0.69 on those that passed (docs/results.md 13-16).
ZOOMS_AIM = 0.3

#: Keys of the stage sections the demo fills in itself (from ``seed``, ``out_dir``, ``protocol`` and
#: ``freeze_vision_tower``): setting one is an error that names the key to set instead.
DEMO_SETS: dict[str, dict[tuple[str, ...], str]] = {
    "world": {("seed",): "seed"},
    "verifier": {("world_seed",): "seed"},
    "sft": {("seed",): "seed", ("train",): "out_dir", ("out_dir",): "out_dir", ("model", "path"): "out_dir",
            ("model", "freeze_vision_tower"): "freeze_vision_tower", ("protocol",): "protocol"},
    "rl": {("seed",): "seed", ("model", "path"): "out_dir", ("model", "freeze_vision_tower"): "freeze_vision_tower",
           ("data", "train"): "out_dir", ("verifier", "backend"): "out_dir", ("verifier", "path"): "out_dir",
           ("run", "out_dir"): "out_dir"},
}


@functools.cache
def _recipe() -> dict[str, Any]:
    return yaml.safe_load((resources.files("mapo") / "configs" / RECIPE).read_text())


def recipe() -> dict[str, Any]:
    """The demo's defaults as a nested mapping (a fresh copy of the packaged ``configs/demo.yaml``)."""
    return copy.deepcopy(_recipe())


def deep_merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into ``into`` (mappings merge key by key; anything else replaces); returns ``into``."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            deep_merge(into[k], v)
        else:
            into[k] = v
    return into


def _is_set(section, path: tuple[str, ...]) -> bool:
    """Whether the config file or --set gave ``section.<path>`` (pydantic's ``model_fields_set``)."""
    for key in path[:-1]:
        if key not in section.model_fields_set:
            return False
        section = getattr(section, key)
    return path[-1] in section.model_fields_set


class DemoConfig(Section):
    """`mapo demo`: the whole pipeline on the embedded default. Its defaults are the packaged configs/demo.yaml;
    a config names only what it changes (sections merge key by key)."""

    command: ClassVar[str] = "mapo demo"

    out_dir: str = Field(description="Where every step writes (world/, verifier/, model/, sft/, rl/, eval/, "
                                     "report/).")
    seed: int = Field(description="Seed of the world, verifier, model, SFT and RL.")
    threads: int | None = Field(description="torch CPU threads of each process while two run: the vision "
                                            "warm-up and the verifier beside the LM and grounding warm-ups "
                                            "(None: torch's default).")
    threads_alone: int | None = Field(description="torch CPU threads of the main process once the second is "
                                                  "done: grounding past shared_grounding_steps, SFT, RL, evaluation "
                                                  "(None: every usable CPU; 1 on a machine other jobs keep busy).")
    packaged: bool = Field(description="Install the tiny model, the verifier and the SFT model packaged with "
                                       "mapo (mapo/assets/demo), each when it was built from exactly this "
                                       "recipe, seed and world (its stamp matches; mapo ships seed 0 of the "
                                       "default recipe), instead of building them: ~13 minutes less on a 2-core "
                                       "machine. false: build them here (mapo.train.packaged).")
    parallel: bool = Field(description="Train the vision warm-up and the verifier in a second process beside the "
                                       "main chain (world -> model -> SFT -> RL), with `threads` each: the same "
                                       "results, a 2-core machine's cores both busy. false: one process, in order.")
    world: WorldConfig = Field(description="The embedded world (`mapo world make --help`); its seed is `seed`.")
    verifier: VerifierTrainConfig = Field(description="The embedded verifier's training (`mapo verifier train "
                                                      "--help`); it trains on this world (world_seed = `seed`).")
    family: str = Field(description="Tiny policy architecture: qwen2_5_vl | qwen2_vl | qwen3_vl.")
    size: str = Field(description="Tiny policy size: tiny | small.")
    vocab_size: int = Field(description="Tokenizer vocabulary (byte-level BPE trained on the world).")
    warmup_steps: int = Field(ge=0, description="Text-only LM warm-up steps before the image warm-ups "
                                                "(mapo.models.warmup).")
    vision_warmup_steps: int = Field(ge=0, description="Steps training the vision tower alone to name the asked "
                                                       "attribute of labelled zooms (warm_up_vision).")
    grounding_steps: int = Field(ge=0, description="Image grounding warm-up steps (a question about an image -> "
                                                   "the expert's zoom box on its target, as grounding_prompt asks "
                                                   "it; warm_up_grounding); needs sft.expert.box_side.")
    shared_grounding_steps: int = Field(ge=0, description="Without grounding_race: grounding steps run at "
                                                          "`threads` beside the second process; before the next one the main process waits for "
                                                          "it and goes on alone at `threads_alone`. A step number, "
                                                          "not the clock, so that a run's result does not depend "
                                                          "on when the verifier finishes.")
    grounding_target: float | None = Field(ge=0, le=1,
                                           description="Held-out hit rate the grounding warm-up trains on for, "
                                                       "past grounding_steps, up to grounding_max_steps (checked "
                                                       "every 100 steps on the val split's targets; null: "
                                                       "grounding_steps, whatever the rate).")
    grounding_max_steps: int = Field(ge=0, description="Cap on the grounding warm-up's steps when "
                                                                  "grounding_target is set.")
    grounding_shifts: int = Field(ge=0, description="Also ask each grounding question on that many copies "
                                                               "of its image rolled (wrapped around) by whole grid "
                                                               "strides, the box moved with the target "
                                                               "(world_grounding(shifts=...)).")
    grounding_prompt: Literal["agent", "where"] = Field(
        description="How the grounding warm-up asks for a target's zoom box. agent: in the agent's own prompt "
                    "(system prompt, image, question and options) answered by the expert's first turn, so SFT starts "
                    "from zooms that already aim, but it took 1100+ steps and missed the cap on one seed of three; "
                    "where: 'Where is the red square? Give its zoom box.' alone, which reached the agent's zooms on "
                    "some seeds only (docs/results.md section 13).")
    grounding_race: bool = Field(description="Race a second grounding warm-up in the second process (after the "
                                             "verifier): the same model and examples, the batches drawn in another "
                                             "order; the first run to reach grounding_target is kept, the second "
                                             "one counted 200 steps later (mapo.models.grounding_race). When "
                                             "grounding generalises is chaotic, so two draws make a slow seed rarer. "
                                             "Both runs train at `threads` (shared_grounding_steps then does not "
                                             "apply); needs parallel and grounding_target (docs/results.md "
                                             "section 15).")
    grounding_restart_steps: int = Field(ge=0, description="Once grounding is done (its bar reached, or its race "
                                                           "won), train that many grounding steps more with a "
                                                           "fresh AdamW, the batches' order from its start; "
                                                           "recorded as grounding_restart in mapo_model.json. "
                                                           "Experimental, 0 by default: seed 1's restarted "
                                                           "models passed after SFT 4 times outside the demo "
                                                           "and failed all 3 times inside it (docs/results.md "
                                                           "sections 15-16).")
    grounding_mix_steps: int = Field(ge=0, description="Once grounding is done (and any restart), train that many "
                                                       "steps more, with a fresh AdamW, on its examples and the "
                                                       "same tasks asked in the agent's own prompt (answered by the "
                                                       "expert's first turn), mixed; the held-out hit is then "
                                                       "checked in the agent's prompt; recorded as grounding_mix. "
                                                       "200 by default: with it seeds 0-4 all reach val >= 0.45 "
                                                       "after RL; without it seed 1's SFT zooms all fall in one "
                                                       "column of the image (docs/results.md sections 16-17). 0 "
                                                       "skips the phase.")
    grounding_flips: bool = Field(description="Also ask the grounding questions on the train images mirrored "
                                              "three ways (4x the examples, no new rendering).")
    freeze_vision_tower: bool = Field(description="After its warm-up, keep the vision tower fixed in the grounding "
                                                  "warm-up, SFT and RL (mapo.models.freeze; its merger trains).")
    vision_patch: int | None = Field(description="Vision patch side in pixels (None: the family's); 8 shows 4x "
                                                 "the image tokens.")
    image_stats: bool = Field(description="Normalise the tiny model's pixels with the world's own mean/std "
                                          "(mapo.models.image_stats) instead of the family's constants.")
    protocol: ProtocolConfig = Field(description="The thinking-with-images protocol of SFT, RL and evaluation.")
    sft: SFTConfig = Field(description="The cold-start SFT (seed, train, out_dir, model.path, "
                                       "model.freeze_vision_tower and protocol are the demo's).")
    rl: TrainConfig = Field(description="The RL stage (seed, model.path, model.freeze_vision_tower, data.train, "
                                        "verifier.backend/path, run.out_dir are the demo's; rollout.protocol "
                                        "keys set here override `protocol`; data.eval defaults to the val split).")
    eval_limit: int = Field(ge=1, description="Test-split tasks evaluated (SFT and RL models alike).")
    eval_temperature: float = Field(ge=0, description="Sampling temperature of the evaluation (0: greedy).")

    @model_validator(mode="before")
    @classmethod
    def _onto_the_recipe(cls, data: Any) -> Any:
        """What a config gives is merged onto the packaged defaults, so it names only what it changes."""
        return deep_merge(recipe(), data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _grounding_cap_above_its_steps(self) -> DemoConfig:
        if self.grounding_target is not None and self.grounding_max_steps <= self.grounding_steps:
            raise ConfigError(f"grounding_max_steps={self.grounding_max_steps} leaves the grounding warm-up no steps "
                              f"past grounding_steps={self.grounding_steps} to reach grounding_target; set it higher "
                              "(the demo: 1600) or grounding_target: null")
        return self

    @model_validator(mode="after")
    def _demo_keys_are_not_set(self) -> DemoConfig:
        for name, keys in DEMO_SETS.items():
            for path, instead in keys.items():
                if _is_set(getattr(self, name), path):
                    key = ".".join((name, *path))
                    raise ConfigError(f"{key}: the demo sets it from `{instead}`; remove {key} and set `{instead}` "
                                      "instead")
        return self

    def protocol_overrides(self) -> dict[str, Any]:
        """The protocol as the keys that differ from ProtocolConfig's defaults (the form SFTConfig and the
        model step's stamp keep)."""
        return self.protocol.model_dump(exclude_defaults=True)


def _stamp_of(path: Path) -> str:
    try:
        return json.loads((path / ".mapo-stamp.json").read_text())["fingerprint"]
    except (OSError, KeyError, json.JSONDecodeError):
        return ""


#: What a step's folder holds, where the log names it.
STEP_NOUNS = {"model": "tiny model", "sft": "SFT model"}


def _step(name: str, out: Path, inputs: dict[str, Any], build, asset: Path | None = None) -> float | None:
    """Run ``build()`` unless ``out`` already holds a finished result for ``inputs``, or ``asset`` (a packaged
    one, mapo.train.packaged) was built from the same inputs and is copied in instead; returns the seconds it
    took (None: reused)."""
    if is_done(out, inputs):
        log.info("[%s] reusing %s", name, out)
        return None
    start = time.perf_counter()
    if packaged.matches(asset, inputs):
        packaged.install(asset, out, inputs)
        stamp = packaged.asset_stamp(asset)
        log.info("[%s] installed the packaged %s (built from this recipe and seed in %s s%s; --set packaged=false "
                 "builds it here)", name, STEP_NOUNS.get(name, name), stamp.get("seconds"),
                 f" on {stamp['built_on']}" if stamp.get("built_on") else "")
        return time.perf_counter() - start
    log.info("[%s] building %s", name, out)
    build()
    seconds = time.perf_counter() - start
    mark_done(out, inputs, seconds)
    log.info("[%s] done in %.0f s", name, seconds)
    return seconds


def world_config(cfg: DemoConfig) -> WorldConfig:
    """The world the demo renders: ``cfg.world`` with the demo's seed."""
    return cfg.world.model_copy(update={"seed": cfg.seed})


def verifier_config(cfg: DemoConfig) -> VerifierTrainConfig:
    """The verifier's training config: ``cfg.verifier`` on renders of the demo's world seed."""
    return cfg.verifier.model_copy(update={"world_seed": cfg.seed})


def step_inputs_world(cfg: DemoConfig) -> dict[str, Any]:
    """The inputs the world step is stamped with (its fingerprint is the world's stamp)."""
    return {"world": world_config(cfg).model_dump()}


def step_inputs_verifier(cfg: DemoConfig) -> dict[str, Any]:
    """The inputs the verifier step is stamped with: its training config on this world."""
    return {"verifier": verifier_config(cfg).model_dump()}


def step_inputs_model(cfg: DemoConfig, world_stamp: str) -> dict[str, Any]:
    """The inputs the tiny-model step is stamped with; ``world_stamp``: the world folder's fingerprint."""
    return {"family": cfg.family, "size": cfg.size, "vocab": cfg.vocab_size, "seed": cfg.seed,
            "warmup_steps": cfg.warmup_steps, "tokenizer": "qwen-split-digits", "image_stats": cfg.image_stats,
            "vision_patch": cfg.vision_patch, "warmup_expert": cfg.sft.expert,
            "grounding_steps": cfg.grounding_steps, "vision_warmup_steps": cfg.vision_warmup_steps,
            "protocol": cfg.protocol_overrides(), "freeze_vision_tower": cfg.freeze_vision_tower,
            "grounding_flips": cfg.grounding_flips,
            # keys added later enter the stamp only when set: models built before them stay valid
            **({"grounding_target": cfg.grounding_target, "grounding_max_steps": cfg.grounding_max_steps}
               if cfg.grounding_target is not None else {}),
            **({"grounding_shifts": cfg.grounding_shifts} if cfg.grounding_shifts else {}),
            **({"grounding_prompt": cfg.grounding_prompt} if cfg.grounding_prompt != "where" else {}),
            **({"grounding_race": True} if cfg.grounding_race else {}),
            **({"grounding_restart_steps": cfg.grounding_restart_steps} if cfg.grounding_restart_steps else {}),
            **({"grounding_mix_steps": cfg.grounding_mix_steps} if cfg.grounding_mix_steps else {}),
            "world": world_stamp}


def step_inputs_sft(cfg: DemoConfig, model_stamp: str) -> dict[str, Any]:
    """The inputs the SFT step is stamped with: its config and the tiny model's fingerprint (which covers the
    world it trains on). The config's paths are left out: they are the run's own folders (``world/``, ``model/``,
    ``sft/``) whatever ``out_dir`` is, so the same recipe stamps alike in any out_dir (and a packaged SFT model
    installs there)."""
    data = sft_config(cfg, Path(cfg.out_dir)).model_dump(mode="json")
    del data["train"], data["out_dir"], data["model"]["path"]
    return {"sft": data, "model": model_stamp}


def sft_config(cfg: DemoConfig, root: Path) -> SFTConfig:
    """The SFT stage's config: ``cfg.sft`` with the demo's seed, paths, protocol and tower freezing."""
    data = cfg.sft.model_dump(mode="json")
    data.update(seed=cfg.seed, train=str(root / "world" / "train.parquet"), out_dir=str(root / "sft"),
                protocol=cfg.protocol_overrides())
    data["model"].update(path=str(root / "model"), freeze_vision_tower=cfg.freeze_vision_tower)
    return SFTConfig.model_validate(data)


def rl_config(cfg: DemoConfig, root: Path) -> TrainConfig:
    """The RL stage's config: ``cfg.rl`` on the SFT model, the world's splits and the demo's verifier."""
    data = cfg.rl.model_dump(mode="json")
    data["seed"] = cfg.seed
    data["model"].update(path=str(root / "sft" / "final"), freeze_vision_tower=cfg.freeze_vision_tower)
    data["data"]["train"] = str(root / "world" / "train.parquet")
    if not _is_set(cfg.rl, ("data", "eval")):
        data["data"]["eval"] = str(root / "world" / "val.parquet")  # the learning curves (run.eval_every)
    data["verifier"].update(backend="embedded", path=str(root / "verifier"))
    data["rollout"]["protocol"] = {**cfg.protocol.model_dump(mode="json"),
                                   **cfg.rl.rollout.protocol.model_dump(mode="json", exclude_unset=True)}
    data["run"]["out_dir"] = str(root / "rl")
    return TrainConfig.model_validate(data)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run (or reuse) every step; returns the report's summary (final evaluation table, stage times)."""
    t0 = time.perf_counter()
    root = Path(cfg.out_dir)
    times: dict[str, float | None] = {}
    with SideProcess(root / "logs" / "side.log", cfg.threads, enabled=cfg.parallel) as side:
        prepare(cfg, side, times)
        ver_dir = root / "verifier"
        test = root / "world" / "test.parquet"
        models = {"SFT": root / "sft" / "final", "SFT + RL (MAPO)": root / "rl" / "final"}

        # 5. the SFT model's test evaluation, here: prepare() left this process at `threads_alone` with the second
        # one done (there, beside RL, it would hold RL at one thread for a clock-dependent number of steps)
        results = {"SFT": _evaluation(cfg, "SFT", models["SFT"], f"sft:{_stamp_of(root / 'sft')}", test,
                                      root / "eval" / "sft", ver_dir, times)}
        warn_if_zooms_miss(cfg.seed, results["SFT"], cfg.grounding_mix_steps)

        # 6. RL with MAPO
        rl_cfg = rl_config(cfg, root)
        rl_inputs = {"rl": rl_cfg.model_dump(mode="json"), "sft": _stamp_of(root / "sft"),
                     "verifier": _stamp_of(ver_dir)}
        times["rl"] = _step("rl", root / "rl", rl_inputs, lambda: _run_rl(rl_cfg, rl_inputs))

        # 7. the RL model's test evaluation
        results["SFT + RL (MAPO)"] = _evaluation(cfg, "SFT + RL", models["SFT + RL (MAPO)"],
                                                 f"rl:{_stamp_of(root / 'rl')}", test, root / "eval" / "rl", ver_dir,
                                                 times)

    # 8. report
    def records(run: Path) -> list[dict[str, Any]]:
        return read_metrics(run) if (run / "metrics.jsonl").exists() else []

    installed = {step: built_seconds(root / step) for step in packaged.STEPS if packaged.was_packaged(root / step)}
    return write_run_report(root / "report", sft=records(root / "sft"), rl=records(root / "rl"), evals=results,
                            minutes=(time.perf_counter() - t0) / 60, stage_seconds=times,
                            parallel=cfg.parallel, packaged=installed)


def warn_if_zooms_miss(seed: int, summary: dict[str, Any], mix_steps: int = 0) -> bool:
    """Warn (and return True) when the SFT model's evaluation ``summary`` has its zooms missing the target;
    ``mix_steps`` is the run's ``grounding_mix_steps`` (the advice differs when that phase already ran)."""
    hit = (summary.get("boxes") or {}).get("hit_rate")
    if hit is None or hit >= ZOOMS_AIM:
        return False
    fix = (f"The mixed grounding phase ran ({mix_steps} steps); try another seed, or more of it (--set "
           f"grounding_mix_steps={2 * mix_steps}: not measured)" if mix_steps else
           "--set grounding_mix_steps=200 lifted such a seed (docs/results.md, sections 16-17), or try another seed")
    log.warning("[eval SFT] on seed %d the SFT model's zooms hit the target on %.2f of the test tasks (0.48-0.87 on "
                "seeds 0-4 of the default recipe): its grounding did not reach the agent's own zooms, and RL has "
                "not recovered from that on any seed so far. %s.", seed, hit, fix)
    return True


def prepare(cfg: DemoConfig, side: SideProcess | None = None,
            times: dict[str, float | None] | None = None) -> Path:
    """Steps 1-4 (world, tiny model, SFT, verifier), each reused when already built; returns ``out_dir``.
    The verifier trains in ``side`` (a second process unless ``cfg.parallel`` is false) while the rest runs
    here; ``times`` gets each step's seconds (None: reused)."""
    root = Path(cfg.out_dir)
    if side is None:
        with SideProcess(root / "logs" / "side.log", cfg.threads, enabled=cfg.parallel) as own:
            return prepare(cfg, own, times)
    threads = MainThreads(side, cfg.threads, cfg.threads_alone)
    threads.alone()  # the world: nothing runs beside it
    root.mkdir(parents=True, exist_ok=True)
    times = {} if times is None else times

    # 1. verifier (only RL and evaluation need it): trained on its own renders of the world (`world_seed`), beside
    # the chain below; when the model is to be built, after its vision warm-up (which the chain waits on)
    ver_cfg = verifier_config(cfg)
    ver_dir = root / "verifier"
    ver_inputs = step_inputs_verifier(cfg)

    ver_asset = packaged.asset("verifier", cfg.seed) if cfg.packaged else None

    def start_verifier() -> None:
        if "verifier" not in side:
            side.submit("verifier", _step, "verifier", ver_dir, ver_inputs,
                        functools.partial(train_verifier, ver_cfg, ver_dir), ver_asset,
                        inline=is_done(ver_dir, ver_inputs) or packaged.matches(ver_asset, ver_inputs))

    # 2. world
    world_cfg = world_config(cfg)
    world_dir = root / "world"
    times["world"] = _step("world", world_dir, step_inputs_world(cfg),
                           lambda: write_world(world_cfg, world_dir))

    # 3. tiny model
    model_dir = root / "model"
    model_inputs = step_inputs_model(cfg, _stamp_of(world_dir))
    # its LM warm-up and first grounding steps run beside the vision warm-up and the verifier; the steps past
    # `shared_grounding_steps` alone, once the verifier is done
    threads.shared()
    times["model"] = _step("model", model_dir, model_inputs,
                           lambda: init_model(world_dir, model_dir, cfg, side, then=start_verifier,
                                              on_step=lambda n: threads.alone() if n > cfg.shared_grounding_steps
                                              else None, alone=threads.alone),
                           packaged.asset("model", cfg.seed) if cfg.packaged else None)
    start_verifier()

    # 4. cold-start SFT
    sft_cfg = sft_config(cfg, root)
    sft_inputs = step_inputs_sft(cfg, _stamp_of(model_dir))
    # SFT and the rest alone: the verifier, trained beside grounding, is done by now (a packaged model with a
    # verifier still to train waits for it here)
    threads.alone()
    times["sft"] = _step("sft", root / "sft", sft_inputs, lambda: _run_sft(sft_cfg, sft_inputs),
                         packaged.asset("sft", cfg.seed) if cfg.packaged else None)

    times["verifier"] = side.result("verifier")
    return root


def train_verifier(ver_cfg: VerifierTrainConfig, out: Path) -> None:
    summary = train_and_save(ver_cfg, out)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1, default=str))


def init_model(world_dir: Path, out: Path, cfg: DemoConfig, side: SideProcess | None = None,
               then: Callable[[], None] | None = None, on_step: Callable[[int], object] | None = None,
               alone: Callable[[], object] | None = None) -> None:
    """Tokenizer, tiny model and its warm-ups. The vision warm-up trains a copy in ``side`` while the LM warm-up
    runs here (they train disjoint weights: the result is the one of running them in turn), then the copy's
    tower joins the model before grounding. ``then()`` is called once the vision warm-up is submitted (what
    else ``side`` should run queues behind it); ``on_step(n)`` before each grounding step; ``alone()`` before
    the mixed grounding phase (``grounding_mix_steps``), which runs with ``side`` done."""
    if out.exists():
        shutil.rmtree(out)
    tasks = load_tasks(train_split(world_dir), limit=600)  # decoded once for the text, the statistics, grounding
    tokenizer = train_tokenizer(world_texts(world_dir, seed=cfg.seed, tasks=tasks), vocab_size=cfg.vocab_size)
    mean, std = world_image_statistics(world_dir, tasks=tasks) if cfg.image_stats else (None, None)
    build_tiny_model(out, tokenizer, family=cfg.family, size=cfg.size, seed=cfg.seed, image_mean=mean,
                     image_std=std, vision_patch=cfg.vision_patch)
    expert = ExpertConfig.model_validate(cfg.sft.expert)  # what SFT will teach
    side = side or SideProcess(out.parent / "logs" / "side.log", cfg.threads, enabled=False)
    tower = out.parent / f".{out.name}-vision"
    if cfg.vision_warmup_steps:
        if tower.exists():
            shutil.rmtree(tower)
        shutil.copytree(out, tower)
        # a second process decodes the tasks itself (not pickled over); in this one they are at hand
        side.submit("vision warm-up", functools.partial(vision_warm_up, steps=cfg.vision_warmup_steps, expert=expert,
                                                        max_pixels=cfg.protocol.image_max_pixels, seed=cfg.seed,
                                                        **({} if side.enabled else {"tasks": tasks})),
                    tower, world_dir)
    if then is not None:
        then()
    if cfg.warmup_steps:
        lm_warm_up(out, world_dir, steps=cfg.warmup_steps, expert=expert, seed=cfg.seed, tasks=tasks)
    if cfg.vision_warmup_steps:
        side.result("vision warm-up")
        adopt_vision_tower(out, tower)
        shutil.rmtree(tower)
    if not cfg.grounding_steps:
        return
    grounding_protocol = cfg.protocol if cfg.grounding_prompt == "agent" else None
    examples = grounding_examples(out, world_dir, expert=expert, max_pixels=cfg.protocol.image_max_pixels,
                                  seed=cfg.seed, tasks=tasks, flips=cfg.grounding_flips, shifts=cfg.grounding_shifts,
                                  protocol=grounding_protocol)
    # the same tasks asked in the agent's own prompt, for the mixed phase (grounding_mix_steps)
    in_agent_prompt = [] if not cfg.grounding_mix_steps or grounding_protocol is not None else grounding_examples(
        out, world_dir, expert=expert, max_pixels=cfg.protocol.image_max_pixels, seed=cfg.seed, tasks=tasks,
        flips=cfg.grounding_flips, protocol=cfg.protocol)
    del tasks  # ~2 GB of decoded 1024-px images the grounding examples no longer need (they hold small copies)
    grounding = functools.partial(grounding_warm_up, steps=cfg.grounding_steps, expert=expert,
                                  max_pixels=cfg.protocol.image_max_pixels, seed=cfg.seed,
                                  freeze_vision_tower=cfg.freeze_vision_tower, target_hit_rate=cfg.grounding_target,
                                  max_steps=cfg.grounding_max_steps, protocol=grounding_protocol,
                                  flips=cfg.grounding_flips, shifts=cfg.grounding_shifts)
    if cfg.grounding_race and side.enabled and cfg.grounding_target is not None:
        done = _race_grounding(out, world_dir, cfg, side, grounding, examples)
    else:
        done = grounding(out, world_dir, examples=examples, on_step=on_step)
    if cfg.grounding_restart_steps:
        again = grounding(out, world_dir, examples=examples, steps=cfg.grounding_restart_steps, target_hit_rate=None,
                          record_as="grounding_restart")
        log.info("[model] grounding restarted with a fresh optimizer: %d steps more, held-out hit rate %s",
                 cfg.grounding_restart_steps, again.get("held_out_hit_rate"))
        # the model SFT starts from is the restart's: judge that one
        done = {**again, "steps": done.get("steps", cfg.grounding_steps) + again.get("steps", 0)}
    if cfg.grounding_mix_steps:
        if alone is not None:
            alone()
        mixed = grounding(out, world_dir, examples=examples + in_agent_prompt, steps=cfg.grounding_mix_steps,
                          target_hit_rate=None, protocol=cfg.protocol, order_seed=race_order_seed(cfg.seed, 3),
                          record_as="grounding_mix")
        log.info("[model] mixed grounding (the where-questions and the agent's prompt, a fresh optimizer): %d steps, "
                 "held-out hit rate in the agent's prompt %s", cfg.grounding_mix_steps,
                 mixed.get("held_out_hit_rate"))
    hit = done.get("held_out_hit_rate")
    if hit is not None and hit < GROUNDING_TOOK:
        log.warning("[model] the grounding warm-up did not take on seed %d: after %d steps its zoom boxes hit %.2f "
                    "of held-out targets (0.5-0.95 where it took). SFT and RL start from a policy that cannot find the "
                    "target and stay near chance (docs/results.md, section 10); try another seed or a larger "
                    "grounding_max_steps.", cfg.seed, done.get("steps", cfg.grounding_steps), hit)


def _race_grounding(out: Path, world_dir: Path, cfg: DemoConfig, side: SideProcess, grounding, examples) -> dict:
    """Grounding as a race of two runs (``grounding_race``): run 0 here on ``out``, run 1 in ``side`` on a copy,
    its batches in another order; the winner's weights end in ``out``. Both train at `threads` to the end of the
    race (the main process does not switch to `threads_alone` during it: the second process is busy)."""
    name = "grounding (racing run 1)"
    board_dir, rival = out.parent / f".{out.name}-race", out.parent / f".{out.name}-race1"
    for path in (board_dir, rival):
        if path.exists():
            shutil.rmtree(path)
    shutil.copytree(out, rival)
    checks = check_steps(cfg.grounding_steps, cfg.grounding_max_steps, 100)
    board = functools.partial(RaceBoard, board_dir, runs=2, target=cfg.grounding_target, checks=checks)
    side.submit(name, functools.partial(grounding, order_seed=race_order_seed(cfg.seed, 1), race=board(run=1)),
                rival, world_dir)
    done = grounding(out, world_dir, examples=examples, race=board(run=0), peers_alive=lambda: side.running(name))
    theirs = side.result(name)
    if not done["race"]["won"]:
        adopt_grounding(out, rival)
        done = theirs
    log.info("[model] grounding race: run %d won (held-out hit rate %.2f after %d steps)", done["race"]["run"],
             done["held_out_hit_rate"], done["steps"])
    shutil.rmtree(rival)
    shutil.rmtree(board_dir)
    return done


def _evaluation(cfg: DemoConfig, name: str, model: Path, model_id: str, test: Path, out: Path, ver_dir: Path,
                times: dict[str, float | None]) -> dict:
    """``model``'s test evaluation, reused when done; ``times[f"eval {name}"]``: its seconds (None: reused)."""
    start = time.perf_counter()
    reused = evaluated(cfg, test, out, model_id) is not None
    summary = evaluate(cfg, model, test, out, ver_dir, model_id)
    times[f"eval {name}"] = None if reused else time.perf_counter() - start
    return summary


def _run_sft(sft_cfg: SFTConfig, inputs: dict[str, Any]) -> None:
    out = Path(sft_cfg.out_dir)
    resume = _resumable(out, sft_cfg, SFTConfig, inputs)
    run_sft(sft_cfg, resume=resume)


def _run_rl(rl_cfg: TrainConfig, inputs: dict[str, Any]) -> None:
    out = Path(rl_cfg.run.out_dir)
    resume = _resumable(out, rl_cfg, TrainConfig, inputs)
    RLTrainer(rl_cfg, resume=resume).train()


def _resumable(out: Path, cfg, cls, inputs: dict[str, Any]) -> bool:
    """Whether ``out`` holds an interrupted run to resume: one begun with the same ``inputs`` (the upstream
    checkpoints' stamps, not only the same config: a rebuilt model sits at the same path) and the same config.
    Otherwise ``out`` is cleared and this build is recorded as begun."""
    path = out / "config.yaml"
    try:
        same = started_with(out, inputs) and path.exists() and load_config(cls, path) == cfg
    except Exception:  # noqa: BLE001 - an unreadable old config just means: start clean
        same = False
    if not same:
        if out.exists():
            shutil.rmtree(out)
        mark_started(out, inputs)
    return same


def _eval_protocol(cfg: DemoConfig) -> ProtocolConfig:
    return cfg.protocol.model_copy(update={"temperature": cfg.eval_temperature})


def _eval_inputs(cfg: DemoConfig, data: Path, model_id: str) -> dict[str, Any]:
    return {"model": model_id, "limit": cfg.eval_limit, "protocol": _eval_protocol(cfg).model_dump(),
            "data": str(data)}


def evaluated(cfg: DemoConfig, data: Path, out: Path, model_id: str) -> dict | None:
    """The summary of a finished evaluation in ``out`` with these settings, or None."""
    summary_path = out / "summary.json"
    if not (is_done(out, _eval_inputs(cfg, data, model_id)) and summary_path.exists()):
        return None
    summary = json.loads(summary_path.read_text())
    # rates that are pure functions of the saved responses are recomputed: one added since the run is there too
    records = ResultsFile(out / RESULTS_NAME).read()
    if records:
        summary["behaviour"] = behaviour_statistics(records)
    return summary


def evaluate(cfg: DemoConfig, model: Path, data: Path, out: Path, verifier_dir: Path, model_id: str) -> dict:
    """The evaluation runner of `mapo eval` on the test split (resumable, reused when already complete)."""
    done = evaluated(cfg, data, out, model_id)
    if done is not None:
        return done
    start = time.perf_counter()
    protocol, inputs, summary_path = _eval_protocol(cfg), _eval_inputs(cfg, data, model_id), out / "summary.json"
    summary = evaluate_policy(model, "world", data, out, protocol=protocol,
                              cfg=EvalConfig(limit=cfg.eval_limit, save_media=True),
                              verifier_cfg=VerifierConfig(backend="embedded", path=verifier_dir),
                              seed=cfg.seed, fresh=True, log=log.info)
    summary.setdefault("tools", {})["first_turn_call_rate"] = first_turn_call_rate(out / RESULTS_NAME)
    summary_path.write_text(json.dumps(summary, indent=1, default=str))
    mark_done(out, inputs, time.perf_counter() - start)
    return summary
