"""Mixed precision as the field trains large policies: fp32 master weights, low-precision compute.

``model.dtype: bfloat16`` in a training config means the *compute* dtype. The parameters (and so AdamW's moments
and every update) stay float32, and forwards run under ``torch.autocast``, which casts each matmul's inputs to
bfloat16 (the cast weight is cached for the whole autocast region). This is what accelerate's
``mixed_precision="bf16"`` and verl's FSDP ``mixed_precision`` (param_dtype bf16, fp32 master shards) do.
Storing the weights themselves in bfloat16 would round an AdamW step of lr 1e-6 away: bf16 keeps 8 bits of
mantissa, so a weight of 0.02 moves only by steps of ~1e-4 (issue #17 measured 1.7% of the weights changing in
3 steps).

Inference (``mapo eval``) has nothing to update, so it loads the weights directly in the requested dtype.
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


class DeviceError(ValueError):
    """A device or dtype the user asked for that this machine cannot give (the message says what to use)."""


def resolve_dtype(name: str | torch.dtype | None, device: str | torch.device = "cpu") -> torch.dtype:
    """``torch.dtype`` of a config name; ``auto``/None = bfloat16 on CUDA (if supported), float32 elsewhere."""
    if isinstance(name, torch.dtype):
        return name
    if name in (None, "auto"):
        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise DeviceError(f"dtype={name!r} is not one of {sorted(DTYPES)} or 'auto'")
    return DTYPES[name]


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``torch.device`` of a config name; ``auto``/None = ``cuda`` when a GPU is visible, else ``cpu``."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device={name!r}: no CUDA GPU is visible to torch; use device=cpu (or auto)")
    return dev


def autocast_context(device: torch.device, compute_dtype: torch.dtype | None, param_dtype: torch.dtype):
    """``torch.autocast`` to ``compute_dtype`` when it is lower than the parameters' dtype, else a no-op."""
    if compute_dtype is None or compute_dtype == param_dtype or compute_dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=compute_dtype)


def enable_gradient_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in backward instead of storing them (transformers' own
    implementation, non-reentrant). Active only in ``model.train()`` mode; generation is unaffected."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False


def cast_state_dict(model, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's floating-point tensors in ``dtype`` (copies; the model's own parameters are untouched)."""
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
