"""Memory and throughput estimate of a run before it starts (`mapo train --dry-run`, `mapo sft --dry-run`).

The model is built on the meta device from the checkpoint's ``config.json`` alone (no weights read, no memory
taken), so a 7B estimate runs on a laptop. Two phases set the peak:

- rollout: weights (fp32 master + the bf16 copy autocast caches) + AdamW state + the KV cache and the prefill
  working memory of the whole rollout batch (prompts_per_step x G sequences, generated together);
- update: weights + fp32 gradients + AdamW state + the activations one micro-batch stores for backward
  (decoder layers, vision blocks, and the [tokens, vocab] float32 log-softmax of the scored positions).

Activation bytes per token per layer are ``ACT_PER_HIDDEN * hidden + ACT_PER_FFN * intermediate`` under bf16
autocast (fp32 residual stream, bf16 matmul inputs, SwiGLU MLP): coefficients measured on Qwen2.5-VL models of
two shapes with ``torch.autograd.graph.saved_tensors_hooks`` (tests/train/test_memory.py re-measures a third).
With gradient checkpointing a layer keeps only its fp32 input (4 * hidden bytes per token) and one layer's
activations exist at a time during recomputation. Estimates, not guarantees: the allocator's fragmentation and
transient buffers come on top (the report keeps 10% headroom).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers

from mapo.agent.protocol import ProtocolConfig
from mapo.models.freeze import freeze_vision_tower as freeze
from mapo.models.freeze import vision_module
from mapo.models.hf_qwen import _ARCHITECTURES, _family

GiB = 1024 ** 3
#: Bytes stored for backward per token per decoder layer, per unit of hidden and MLP width (bf16 autocast).
ACT_PER_HIDDEN = {"bf16": 35.0, "fp32": 52.0}
ACT_PER_FFN = {"bf16": 8.5, "fp32": 13.0}
#: Float32 [positions, vocab] tensors the log-prob + entropy head keeps for backward (log-softmax, its exp, ...).
HEAD_VOCAB_COPIES = 3
#: Text tokens of a prompt besides the image: system prompt with the tool schema, question and options.
PROMPT_TEXT_TOKENS = 600
HEADROOM = 0.10
#: Dense bf16 peak FLOP/s and memory bandwidth (bytes/s) of common accelerators, matched by name substring.
DEVICES = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12),
           "L40S": (362e12, 0.86e12), "A10": (125e12, 0.6e12)}


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a checkpoint's config: parameter counts and layer widths."""

    n_params: int
    n_trainable: int
    n_vision: int
    hidden: int
    intermediate: int
    layers: int
    kv_dim: int  # key/value width per token per layer (kv heads x head dim)
    vocab: int
    vision_hidden: int
    vision_intermediate: int
    vision_depth: int
    patch: int
    merge: int


def model_shape(path: str | Path, freeze_vision_tower: bool = False) -> ModelShape:
    """Build ``path``'s architecture on the meta device from its ``config.json`` (no weights needed)."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file}: no such file; --dry-run needs the checkpoint's config.json "
                                "(the weights are not read)")
    family = _family(json.loads(cfg_file.read_text()), path)
    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    with torch.device("meta"):
        model = getattr(transformers, _ARCHITECTURES[family])(config)
    if freeze_vision_tower:
        freeze(model)

    text, vision = config.text_config, config.vision_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_heads = text.num_key_value_heads or text.num_attention_heads
    v_hidden = getattr(vision, "hidden_size", None) if family != "qwen2_vl" else vision.embed_dim
    v_inter = getattr(vision, "intermediate_size", None) or int(v_hidden * getattr(vision, "mlp_ratio", 4))
    return ModelShape(
        n_params=sum(p.numel() for p in model.parameters()),
        n_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        n_vision=sum(p.numel() for p in vision_module(model).parameters()),
        hidden=text.hidden_size, intermediate=text.intermediate_size, layers=text.num_hidden_layers,
        kv_dim=kv_heads * head_dim, vocab=text.vocab_size, vision_hidden=v_hidden, vision_intermediate=v_inter,
        vision_depth=vision.depth, patch=vision.patch_size, merge=vision.spatial_merge_size)


@dataclass(frozen=True)
class Workload:
    """The sizes of one step. Token counts are per trajectory, at the configured limits (worst case)."""

    micro_batch: int  # trajectories per forward/backward
    prompt_tokens: int  # text + image tokens of the prompt
    response_tokens: int  # generated + observation tokens (crops included)
    image_patches: int  # vision-tower patches of all images of one trajectory
    rollout_batch: int = 0  # sequences generated together (0: no rollout, e.g. SFT)
    new_tokens: int = 0  # tokens generated per sequence (all turns)
    trained_sequences: int = 1  # trajectories trained on per step (for the FLOP count)


def workload(protocol: dict, *, micro_batch: int, rollout_batch: int = 0, trained_sequences: int = 1,
             patch: int = 14, merge: int = 2) -> Workload:
    """A workload from ``ProtocolConfig`` fields: the task image at ``image_max_pixels``, crops up to
    ``trajectory_max_pixels`` in all, responses up to ``max_response_tokens``."""
    p = protocol if isinstance(protocol, ProtocolConfig) else ProtocolConfig(**protocol)
    cell = (patch * merge) ** 2
    image_tokens = p.image_max_pixels // cell
    all_pixels = max(p.trajectory_max_pixels, p.image_max_pixels)
    return Workload(micro_batch=micro_batch, prompt_tokens=PROMPT_TEXT_TOKENS + image_tokens,
                    response_tokens=p.max_response_tokens, image_patches=all_pixels // (patch * patch),
                    rollout_batch=rollout_batch,
                    new_tokens=min(p.max_turns * p.max_new_tokens_per_turn, p.max_response_tokens),
                    trained_sequences=trained_sequences)


@dataclass
class Estimate:
    """Bytes per item, the two phases' peaks, and FLOPs of one step."""

    items: dict[str, float] = field(default_factory=dict)
    rollout_peak: float = 0.0
    update_peak: float = 0.0
    update_flops: float = 0.0
    decode_bytes: float = 0.0  # bytes read from memory per decoding step (weights + KV): decode is bound by it

    @property
    def peak(self) -> float:
        return max(self.rollout_peak, self.update_peak)


def activation_bytes(shape: ModelShape, work: Workload, *, compute: str = "bf16",
                     gradient_checkpointing: bool = False, vision_trains: bool = True) -> dict[str, float]:
    """Bytes one micro-batch stores for backward: decoder layers, vision blocks, the vocabulary head."""
    tokens = work.micro_batch * (work.prompt_tokens + work.response_tokens)
    per_layer = ACT_PER_HIDDEN[compute] * shape.hidden + ACT_PER_FFN[compute] * shape.intermediate
    if gradient_checkpointing:
        text = tokens * (4 * shape.hidden * shape.layers + per_layer)
    else:
        text = tokens * per_layer * shape.layers
    patches = work.micro_batch * work.image_patches
    v_per = ACT_PER_HIDDEN[compute] * shape.vision_hidden + ACT_PER_FFN[compute] * shape.vision_intermediate
    if not vision_trains:
        vision = 0.0
    elif gradient_checkpointing:
        vision = patches * (4 * shape.vision_hidden * shape.vision_depth + v_per)
    else:
        vision = patches * v_per * shape.vision_depth
    head = work.micro_batch * work.response_tokens * shape.vocab * 4 * HEAD_VOCAB_COPIES
    return {"activations: decoder layers": text, "activations: vision tower": vision,
            "activations: log-prob head": head}


def estimate(shape: ModelShape, work: Workload, *, dtype: str = "bfloat16", gradient_checkpointing: bool = False,
             reference_model: bool = False, vision_trains: bool = True) -> Estimate:
    """Memory of a training run with fp32 master weights computing in ``dtype`` (see module doc)."""
    low = dtype in ("bfloat16", "float16", "bf16", "fp16")
    compute = "bf16" if low else "fp32"
    est = Estimate()
    items = est.items
    items["weights (fp32 master)"] = 4.0 * shape.n_params
    if low:
        items["bf16 weight copy (autocast cache)"] = 2.0 * shape.n_trainable
    if reference_model:
        items["reference model"] = 4.0 * shape.n_params
    items["AdamW state (fp32 m, v)"] = 8.0 * shape.n_trainable
    resident = sum(items.values())
    items["gradients (fp32)"] = 4.0 * shape.n_trainable
    acts = activation_bytes(shape, work, compute=compute, gradient_checkpointing=gradient_checkpointing,
                            vision_trains=vision_trains)
    items.update(acts)
    est.update_peak = resident + items["gradients (fp32)"] + sum(acts.values())
    if work.rollout_batch:
        seq = work.prompt_tokens + work.response_tokens
        kv_bytes = 2 if low else 4
        items["rollout: KV cache"] = work.rollout_batch * seq * 2 * shape.layers * shape.kv_dim * kv_bytes
        # one decoding step: float32 logits, processed scores and their log-softmax, [batch, vocab] each
        items["rollout: decoding logits"] = work.rollout_batch * shape.vocab * 4.0 * 3
        # prefill (no grad): one layer's transient tensors at a time, for every sequence's whole context; the
        # vision tower encodes every image of the batch the same way
        text = work.rollout_batch * seq * (2 * kv_bytes * shape.intermediate + 3 * 4 * shape.hidden)
        vision = work.rollout_batch * work.image_patches * (2 * kv_bytes * shape.vision_intermediate +
                                                            3 * 4 * shape.vision_hidden)
        items["rollout: prefill working memory"] = max(text, vision)
        est.rollout_peak = resident + sum(v for k, v in items.items() if k.startswith("rollout:"))
        est.decode_bytes = (2 if low else 4) * shape.n_params + items["rollout: KV cache"]
    trained_tokens = work.trained_sequences * (work.prompt_tokens + work.response_tokens)
    # 2 FLOPs per parameter per token forward, 4 backward; +2 for recomputation under checkpointing
    est.update_flops = (6 + (2 if gradient_checkpointing else 0)) * shape.n_params * trained_tokens
    return est


def estimate_train(cfg) -> tuple[ModelShape, Workload, Estimate]:
    """The estimate of `mapo train` with ``cfg`` (a TrainConfig)."""
    shape = model_shape(cfg.model.path, cfg.model.freeze_vision_tower)
    alg, ro = cfg.algorithm, cfg.rollout
    work = workload(ro.protocol, micro_batch=alg.micro_batch_size or ro.group_size,
                    rollout_batch=ro.prompts_per_step * ro.group_size,
                    trained_sequences=ro.prompts_per_step * ro.group_size * alg.ppo_epochs,
                    patch=shape.patch, merge=shape.merge)
    est = estimate(shape, work, dtype=cfg.model.dtype, gradient_checkpointing=cfg.model.gradient_checkpointing,
                   reference_model=alg.kl_coef > 0, vision_trains=not cfg.model.freeze_vision_tower)
    return shape, work, est


def estimate_sft(cfg) -> tuple[ModelShape, Workload, Estimate]:
    """The estimate of `mapo sft` with ``cfg`` (an SFTConfig): no rollout, micro-batches of its trajectories."""
    shape = model_shape(cfg.model.path, cfg.model.freeze_vision_tower)
    work = workload(cfg.protocol, micro_batch=cfg.micro_batch_size, trained_sequences=cfg.batch_size,
                    patch=shape.patch, merge=shape.merge)
    return shape, work, estimate(shape, work, dtype=cfg.model.dtype,
                                 gradient_checkpointing=cfg.model.gradient_checkpointing,
                                 vision_trains=not cfg.model.freeze_vision_tower)


def device_memory(device: str) -> tuple[float | None, str | None]:
    """(bytes, name) of ``device`` when it is a visible CUDA GPU, else (None, None)."""
    if not (device.startswith("cuda") or device == "auto") or not torch.cuda.is_available():
        return None, None
    props = torch.cuda.get_device_properties(torch.device(device if device != "auto" else "cuda"))
    return float(props.total_memory), props.name


def advice(shape: ModelShape, work: Workload, est: Estimate, budget: float, *, gradient_checkpointing: bool,
           freeze_vision_tower: bool, rl: bool) -> list[str]:
    """Settings to change, most effective first, when ``est`` does not fit ``budget`` bytes (with headroom)."""
    limit = budget * (1 - HEADROOM)
    if est.peak <= limit:
        return []
    out = []
    static = est.items["weights (fp32 master)"] + est.items["AdamW state (fp32 m, v)"] + \
        est.items["gradients (fp32)"] + est.items.get("bf16 weight copy (autocast cache)", 0.0)
    if static > limit:
        out.append(f"weights + fp32 master/AdamW state + gradients alone take {static / GiB:.0f} GiB: train on "
                   "several GPUs with the verl integration (FSDP shards them; docs/verl.md)")
    if est.update_peak > limit:
        if not gradient_checkpointing:
            out.append("set model.gradient_checkpointing=true (activations of a micro-batch shrink ~"
                       f"{shape.layers}x)")
        key = "algorithm.micro_batch_size" if rl else "micro_batch_size"
        if work.micro_batch > 1:
            out.append(f"lower {key} (now {work.micro_batch}): activations scale with it")
        key = "rollout.protocol" if rl else "protocol"
        out.append(f"lower {key}.max_response_tokens (now {work.response_tokens}) or "
                   f"{key}.trajectory_max_pixels: the log-prob head keeps {HEAD_VOCAB_COPIES} float32 "
                   f"[tokens x {shape.vocab}] tensors")
        if not freeze_vision_tower:
            out.append("set model.freeze_vision_tower=true (no vision-tower gradients, AdamW state or activations)")
    if rl and est.rollout_peak > limit:
        out.append(f"lower rollout.prompts_per_step (the {work.rollout_batch} sequences of a step are generated "
                   "together: KV cache and prefill scale with it)")
    return out


def parse_bytes(text: str) -> float:
    """``"80GB"``, ``"80GiB"``, ``"141G"`` or a plain number of GiB -> bytes (GB and GiB both read as GiB,
    as GPU vendors' '80GB' boards hold ~79.6 GiB usable)."""
    t = text.strip().lower().replace(" ", "")
    for suffix in ("gib", "gb", "g"):
        if t.endswith(suffix):
            t = t[: -len(suffix)]
            break
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"--device-memory {text!r}: expected a size like 80GB or 141GiB") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--device-memory {text!r}: must be a positive size like 80GB")
    return value * GiB


def report(shape: ModelShape, work: Workload, est: Estimate, *, budget: float | None, device_name: str | None,
           suggestions: list[str]) -> str:
    """The text `--dry-run` prints."""
    lines = [(f"model: {shape.n_params / 1e9:.2f}B parameters ({shape.n_trainable / 1e9:.2f}B trainable, "
             f"vision tower {shape.n_vision / 1e9:.2f}B), built on the meta device from config.json"),
             f"per trajectory: {work.prompt_tokens} prompt + {work.response_tokens} response tokens, "
             f"{work.image_patches} vision patches; micro-batch {work.micro_batch}"
             + (f"; rollout batch {work.rollout_batch}" if work.rollout_batch else ""),
             "", f"{'item':40s} {'GiB':>9s}"]
    for name, b in est.items.items():
        lines.append(f"{name:40s} {b / GiB:9.1f}")
    if est.rollout_peak:
        lines.append(f"{'peak during rollout':40s} {est.rollout_peak / GiB:9.1f}")
    lines.append(f"{'peak during update':40s} {est.update_peak / GiB:9.1f}")
    lines.append(f"{'PEAK':40s} {est.peak / GiB:9.1f}")
    lines.append(f"update compute: {est.update_flops / 1e15:.1f} PFLOP per step")
    known = next((v for k, v in DEVICES.items() if device_name and k in device_name.upper()), None)
    if known:
        flops, bw = known
        lines.append(f"on {device_name}: update >= {est.update_flops / (0.4 * flops):.0f} s per step at 40% of "
                     f"its bf16 peak; each decoding step >= {est.decode_bytes / bw * 1e3:.1f} ms "
                     f"({work.new_tokens} steps per rollout at most)")
    if budget is not None:
        where = device_name or "the given device"
        fits = est.peak <= budget * (1 - HEADROOM)
        lines.append(f"{where}: {budget / GiB:.0f} GiB -> {'fits' if fits else 'DOES NOT FIT'} "
                     f"(with {HEADROOM:.0%} headroom)")
        lines += [f"  - {s}" for s in suggestions]
    else:
        lines.append("no GPU visible: pass --device-memory 80GB to check the fit against a device")
    return "\n".join(lines)
