"""The trainer's typed configuration: one pydantic model per concern, loaded from YAML with dotted overrides.

Every field documents itself (``Field(description=...)``); ``mapo train --set algorithm.beta=0.2`` is checked
against these models, so there is one copy of the defaults. The defaults are MAPO's (``algorithm`` extends
:class:`mapo.core.params.MAPOParams`: beta 0.4, lambda 0.95), at most 6 turns, no KL to a reference. The
sections owned by other layers are their own typed configs (``rollout.protocol``: ``ProtocolConfig``,
``verifier``: ``VerifierConfig``, ``reward``: ``RewardConfig``), so a typo anywhere fails at load with its key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mapo.agent.protocol import ProtocolConfig
from mapo.core.losses import AggMode
from mapo.core.params import MAPOParams
from mapo.data.expert import ExpertConfig
from mapo.data.parquet import RowConfig
from mapo.rewards.config import RewardConfig
from mapo.verifier.config import VerifierConfig


class ConfigError(ValueError):
    """A user-facing configuration problem: the message names the key or file and the fix."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Section):
    path: str = Field("runs/demo/model", description="Local Hugging Face checkpoint directory of the policy.")
    device: str = Field("cpu", description="Torch device for the policy, e.g. 'cpu', 'cuda:0' or 'auto' (cuda "
                                           "when a GPU is visible).")
    dtype: str = Field("float32", description="Compute dtype: float32 | bfloat16 | float16. Training keeps fp32 "
                                              "master weights and AdamW state and runs forwards under autocast; "
                                              "checkpoints/ are fp32 (exact resume), final/ is written in this "
                                              "dtype.")
    gradient_checkpointing: bool = Field(False, description="Recompute decoder-layer activations in backward "
                                                            "(~1/3 more compute, activation memory ~1 hidden "
                                                            "vector per token per layer): needed for 7B "
                                                            "multi-turn image contexts on one GPU.")
    trust_remote_code: bool = Field(False, description="Allow the checkpoint's own Python code (off: safer).")
    freeze_vision_tower: bool = Field(False, description="Keep the vision tower's weights fixed (its merger into "
                                      "the language model still trains): mapo.models.freeze.")
    fast_generation: bool = Field(True, description="Generation's own speed-ups: K/V written in place, KV heads "
                                                    "kept grouped under a padding mask, mapo's decode loop. Each "
                                                    "gives Hugging Face generate's tokens and log-probs bit for "
                                                    "bit (tests); false runs Hugging Face's own path (e.g. if a "
                                                    "transformers upgrade breaks one). Not in a run's stamp.")


class DataConfig(Section):
    train: str = Field("runs/demo/world/train.parquet", description="DeepEyes-schema parquet of RL prompts.")
    eval: str | None = Field(None, description="Parquet evaluated every `train.eval_every` steps (None: off).")
    eval_limit: int = Field(64, description="Number of tasks of `eval` used by the periodic evaluation.")
    eval_temperatures: list[float] = Field(default_factory=lambda: [0.0], description="Temperatures of the "
                                           "periodic evaluation, one pass each: the first is logged as eval/*, "
                                           "others as eval_t<T>/* (0 = greedy, as `mapo eval` and the demo's "
                                           "test table; 1 = the policy as RL samples it).")
    max_tasks: int | None = Field(None, description="Use only the first N training tasks (None: all).")
    rows: RowConfig = Field(default_factory=RowConfig, description="How DeepEyes-style rows become tasks "
                            "(mapo.data.parquet.RowConfig: question, instruction_markers, allow_absolute_paths, "
                            "max_decode_pixels).")


class RolloutConfig(Section):
    group_size: int = Field(8, ge=1, description="G: rollouts per prompt; advantages normalise within a group.")
    prompts_per_step: int = Field(4, ge=1, description="Prompts sampled per RL step (batch = prompts x G).")
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig,
                                     description="The thinking-with-images protocol and its limits (mapo.agent); "
                                                 "temperature also scores the log-probs, max_response_tokens is "
                                                 "the Dr.GRPO horizon.")


class AlgorithmConfig(MAPOParams, Section):
    """The estimator's options (:class:`MAPOParams`: beta, lam, aggregate, no_tool_score, failed_call_score,
    ...; each estimator reads those it takes) plus the policy-loss settings."""

    estimator: str = Field("mapo", description="Advantage estimator by registry name: grpo | rloo | mapo | "
                                               "mapo_turn (see `mapo advantages`).")
    recompute_old_logprobs: bool = Field(False, description="Score the rollouts with the policy before the "
                                                              "update instead of trusting the sampler's log-probs "
                                                              "(needed when another engine generates).")
    ppo_epochs: int = Field(1, ge=1, description="Passes over the batch per RL step.")
    mini_batch_groups: int = Field(4, ge=1, description="Groups per optimizer step (mini-batch = groups x G).")
    micro_batch_size: int | None = Field(None, description="Trajectories per forward/backward (None: one "
                                                          "group); gradient variance is measured across them.")
    clip_low: float = Field(0.2, ge=0, description="PPO ratio clip below 1 (epsilon_low).")
    clip_high: float = Field(0.2, ge=0, description="PPO ratio clip above 1 (epsilon_high; > clip_low = "
                                                    "clip-higher).")
    dual_clip: float | None = Field(None, description="Dual-clip constant c > 1 for negative advantages "
                                                      "(None: off).")
    loss_agg_mode: AggMode = Field("token-mean", description="Token reduction of the loss over each mini-batch: "
                                                             "token-mean | seq-mean-token-mean | seq-mean-token-sum "
                                                             "| seq-mean-token-sum-norm (Dr.GRPO: / "
                                                             "rollout.protocol.max_response_tokens).")
    kl_coef: float = Field(0.0, ge=0, description="KL-to-reference loss weight; 0 = no reference model (MAPO).")
    kl_type: str = Field("low_var_kl", description="KL estimator: k1 | k2 | k3 (aliases kl, mse, low_var_kl).")
    entropy_coef: float = Field(0.0, description="Entropy bonus weight (0: off).")
    mask_turn_cap: bool = Field(False, description="Drop trajectories that hit the turn cap from the loss "
                                                   "(Mini-o3's over-turn masking).")
    skip_zero_adv_groups: bool = Field(True, description="Drop groups whose advantages are all zero (no signal).")


class OptimConfig(Section):
    lr: float = Field(1e-6, gt=0, description="AdamW peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps (optimizer steps).")
    schedule: Literal["constant", "cosine", "linear"] = Field("constant", description="Decay after warm-up.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping by global norm.")


class GradVarianceConfig(Section):
    enabled: bool = Field(True, description="Estimate the policy-gradient variance every step. Cost per "
                                            "micro-batch: K random directions over the probed parameters "
                                            "(~1.5 s per 10M parameters with K=8 on CPU; see max_params).")
    max_params: int | None = Field(50_000_000, ge=1, description="Probe a seeded subset of parameter tensors "
                                                                "holding at most this many elements (None: "
                                                                "all; 7B models: keep it small or disable).")
    num_directions: int = Field(8, ge=1, description="Fixed random directions the per-micro-batch gradients "
                                                     "are projected on.")
    seed: int = Field(1234, description="Seed of the random directions (the same for every estimator).")


class RunConfig(Section):
    total_steps: int = Field(100, ge=0, description="RL steps (one step = one batch of rollouts).")
    out_dir: str = Field("runs/mapo", description="Run directory: metrics.jsonl, tensorboard/, checkpoints/.")
    save_every: int = Field(10, ge=1, description="Checkpoint every N steps (and at the end).")
    keep_last: int = Field(2, ge=1, description="Checkpoints kept on disk (older ones are deleted).")
    eval_every: int = Field(0, ge=0, description="Evaluate on `data.eval` every N steps (0: off).")
    eval_at_start: bool = Field(True, description="With eval_every > 0, also evaluate before the first step "
                                "(logged as step 0: the curve starts at the starting policy).")
    progress: bool = Field(True, description="Show a progress bar.")
    tensorboard: bool = Field(True, description="Also log metrics to TensorBoard.")


class TrainConfig(Section):
    """`mapo train`: the MAPO RL loop."""

    command: ClassVar[str] = "mapo train"  # named in load errors: where --show-config lists the keys

    seed: int = Field(0, description="Seed of prompt sampling, generation and initialisation.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy checkpoint.")
    data: DataConfig = Field(default_factory=DataConfig, description="Training and evaluation tasks.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Multi-turn sampling.")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="Advantage and loss.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimizer and schedule.")
    verifier: VerifierConfig = Field(default_factory=lambda: VerifierConfig(backend="embedded",
                                                                            path="runs/demo/verifier"),
                                     description="The verifier that scores each zoom's claim against its crop.")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="The outcome reward (mapo.rewards).")
    grad_variance: GradVarianceConfig = Field(default_factory=GradVarianceConfig,
                                              description="Gradient-variance probe.")
    run: RunConfig = Field(default_factory=RunConfig, description="Length, logging and checkpoints.")


class SFTConfig(Section):
    """`mapo sft`: cold-start supervised fine-tuning on expert trajectories."""

    command: ClassVar[str] = "mapo sft"

    seed: int = Field(0, description="Seed of expert sampling, shuffling and initialisation.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The checkpoint to fine-tune.")
    train: str = Field("runs/demo/world/train.parquet", description="Parquet of tasks to build experts from.")
    data: str | None = Field(None, description="Your own multi-turn trajectories with images (.jsonl or "
                                               ".parquet of chat messages, docs/sft_data.md) to train on instead "
                                               "of the experts built from `train`.")
    max_tokens: int | None = Field(None, ge=1, description="With `data`: leave out rows longer than this many "
                                                           "tokens (None: keep all).")
    max_tasks: int | None = Field(None, description="Use only the first N tasks (or rows of `data`; None: all).")
    expert: dict[str, Any] = Field(default_factory=dict, description="mapo.data.expert ExpertConfig fields "
                                                                     "(imperfection rates); the others keep "
                                                                     "ExpertConfig's defaults.")
    protocol: dict[str, Any] = Field(default_factory=dict, description="mapo.agent ProtocolConfig fields; the "
                                                                       "others keep ProtocolConfig's defaults.")
    epochs: float = Field(1.0, gt=0, description="Passes over the expert trajectories.")
    batch_size: int = Field(8, ge=1, description="Trajectories per optimizer step.")
    micro_batch_size: int = Field(8, ge=1, description="Trajectories per forward/backward.")
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=10, schedule="cosine"),
                               description="Optimizer and schedule.")
    out_dir: str = Field("runs/demo/sft", description="Run directory (checkpoints/, metrics.jsonl, final/).")
    save_every: int = Field(50, ge=1, description="Checkpoint every N optimizer steps (and at the end).")
    keep_last: int = Field(2, ge=1, description="Checkpoints kept on disk.")
    progress: bool = Field(True, description="Show a progress bar.")

    # Kept as the keys given (their stamps and saved configs name only those), checked at load like a section.
    @field_validator("expert")
    @classmethod
    def _expert_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _checked(ExpertConfig, value)

    @field_validator("protocol")
    @classmethod
    def _protocol_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _checked(ProtocolConfig, value)


def _checked(model: type[BaseModel], value: dict[str, Any]) -> dict[str, Any]:
    """``value`` unchanged when it validates as ``model``, else a ValueError naming each bad key."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    return value


C = TypeVar("C", bound=BaseModel)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=0.3"`` -> (["a", "b"], 0.3); the value is parsed as YAML so numbers, bools and lists work."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set algorithm.beta=0.2")
    key, raw = item.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set {item!r}: empty key; use e.g. --set algorithm.beta=0.2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return keys, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted ``key=value`` in the nested mapping ``data`` (in place; returned for chaining)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {k!r} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return data


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Read ``path`` (YAML; None = defaults), apply ``--set`` overrides, validate against ``cls``."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config {path}: no such file; pass an existing YAML (see configs/)")
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: top level must be a mapping of sections, got {type(loaded).__name__}")
        data = loaded or {}
    apply_overrides(data, overrides or [])
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        where = f"config {path}" if path else "config"
        command = getattr(cls, "command", "mapo train")
        raise ConfigError(f"{where}: {problems}; fix the key or value (see `{command} --show-config` or "
                          "configs/*.yaml)") from exc


def _problem(error: dict[str, Any]) -> str:
    """One validation error as ``key: what is wrong`` (a whole-config check has no key of its own)."""
    msg = error["msg"].removeprefix("Value error, ")
    return f"{'.'.join(map(str, error['loc']))}: {msg}" if error["loc"] else msg


def dump_config(cfg: BaseModel, path: str | Path) -> None:
    """Write the resolved config as YAML (every run directory keeps the config it ran with)."""
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def describe_config(cls: type[BaseModel], prefix: str = "", defaults: BaseModel | None = None
                    ) -> list[tuple[str, str, str]]:
    """(dotted key, default, description) of every leaf field: the reference the CLI prints. Nested sections
    show the defaults their parent gives them (e.g. ``verifier.path``), not only their own class's."""
    rows: list[tuple[str, str, str]] = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        key = f"{prefix}{name}"
        default = (getattr(defaults, name) if defaults is not None
                   else field.get_default(call_default_factory=True))
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_config(ann, key + ".", default if isinstance(default, BaseModel) else None))
        else:
            rows.append((key, repr(default), field.description or ""))
    return rows
