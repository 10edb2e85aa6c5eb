"""A CPU platform for verl 0.9.1, for smoke tests and debugging (no accelerator, gloo, fp32).

verl ships platforms for NVIDIA, Ascend and ROCm only; with no accelerator it falls back to CUDA. This module
plugs a ``cpu`` platform into verl's own extension points and is loaded by them, in every process verl starts:

- ``VERL_USE_EXTERNAL_MODULES=mapo.integrations.verl.cpu`` makes ``import verl`` import it (driver, trainer
  actor, FSDP workers, agent-loop workers, rollout server);
- ``VERL_PLATFORM=cpu`` selects the platform registered here with ``PlatformRegistry.register``;
- the FSDP/FSDP2 training engine is registered for device ``cpu`` with ``EngineRegistry.register`` (verl
  registers it for ``cuda``/``npu`` only).

Two things have no verl hook and are adapted here, narrowly, while the platform is active:

- verl builds the process-group backend as ``"cpu:gloo,<device>:<backend>"``, i.e. ``"cpu:gloo,cpu:gloo"`` on
  CPU, which torch rejects ("Duplicate device type cpu"); that exact duplicate is passed to torch as ``"gloo"``.
- transformers' Qwen2/2.5-VL processors load a video processor that needs torchvision (whose wheels must match
  torch exactly); without it verl's processor is ``None`` and images cannot be used. A torchvision-free
  processor for those configs (image processor + tokenizer, no video) is registered with ``AutoProcessor``.

Ray still schedules workers on "GPU" resources: the launch declares logical GPUs
(``+ray_kwargs.ray_init.num_gpus=N``), see :mod:`mapo.integrations.verl.cpu`.
"""

from __future__ import annotations

import importlib.util
import os
import types
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
import transformers
from transformers import AutoProcessor, ProcessorMixin

# verl's names are imported inside the functions below: `import verl` imports this module (through
# VERL_USE_EXTERNAL_MODULES), so a top-level `import verl...` here would run into a half-initialised verl.
PLATFORM_NAME = "cpu"


def _memory() -> tuple[int, int]:
    """(free, total) bytes of host memory: what verl's memory logging asks of a device."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.available), int(vm.total)
    except ImportError:  # psutil comes with ray; this is a fallback only
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size, pages * size


class _CpuDeviceModule(types.ModuleType):
    """What verl calls on ``get_torch_device()`` (``torch.cuda``'s role), answered for the host: streams and
    device selection from ``torch.cpu``, no-op caches, host memory for ``mem_get_info``, zeros for allocator
    statistics, the CPU generator for RNG state."""

    def __init__(self):
        super().__init__("mapo_cpu_device")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        return _memory()

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "cpu"


CPU_DEVICE_MODULE = _CpuDeviceModule()


def _platform_class():
    from verl.plugin.platform.platform_base import PlatformBase

    class PlatformCPU(PlatformBase):
        """verl platform for the host CPU: device ``cpu``, backend ``gloo``, Ray resource ``GPU`` (logical)."""

        @property
        def device_name(self) -> str:
            return "cpu"

        @property
        def vendor_name(self) -> str:
            return "cpu"

        @property
        def device_module(self) -> types.ModuleType:
            return CPU_DEVICE_MODULE

        def is_available(self) -> bool:
            return True

        def current_device(self) -> torch.device:
            # verl moves modules and batches with ``.to(get_device_id())``: an index would mean an accelerator.
            return torch.device("cpu")

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            return None

        def synchronize(self, device_index: int | None = None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            return "CUDA_VISIBLE_DEVICES"

        @contextmanager
        def nvtx_range(self, msg: str):
            yield

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

        def ray_resource_name(self) -> str:
            # verl's resource pools ask Ray for "GPU" bundles; the CPU launch declares them logically.
            return "GPU"

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self) -> Any:
            return None

    return PlatformCPU


def _register_platform() -> None:
    from verl.plugin.platform.platform_manager import PlatformRegistry

    if PlatformRegistry.get(PLATFORM_NAME) is None:
        PlatformRegistry.register(platform=PLATFORM_NAME)(_platform_class())


def _register_engines() -> None:
    """verl's FSDP engines, registered for device ``cpu`` as well (FSDP2 runs on CPU with gloo)."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    for model_type, engine in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        registered = EngineRegistry._engines.get(model_type, {})
        for backend in ("fsdp", "fsdp2"):
            if PLATFORM_NAME not in registered.get(backend, {}):
                EngineRegistry.register(model_type=model_type, backend=backend, device=PLATFORM_NAME)(engine)


_DUPLICATE_CPU_GLOO = "cpu:gloo,cpu:gloo"


def gloo_backend(backend: Any) -> Any:
    """verl's ``"cpu:gloo,cpu:gloo"`` (its CPU-plus-device backend string on a CPU device) -> ``"gloo"``;
    anything else unchanged."""
    return "gloo" if isinstance(backend, str) and backend.replace(" ", "") == _DUPLICATE_CPU_GLOO else backend


def _install_gloo_backend() -> None:
    if getattr(dist.init_process_group, "_mapo_cpu", False):
        return
    original = dist.init_process_group

    def init_process_group(*args, **kwargs):
        if args:
            args = (gloo_backend(args[0]), *args[1:])
        if "backend" in kwargs:
            kwargs["backend"] = gloo_backend(kwargs["backend"])
        return original(*args, **kwargs)

    init_process_group._mapo_cpu = True
    init_process_group.__wrapped__ = original
    dist.init_process_group = init_process_group


def _register_processors() -> None:
    """Qwen2-VL / Qwen2.5-VL processors without the torchvision video processor (images only)."""
    for config_name, processor_name in (("Qwen2VLConfig", "Qwen2VLProcessor"),
                                        ("Qwen2_5_VLConfig", "Qwen2_5_VLProcessor")):
        base = getattr(transformers, processor_name)

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
            self.video_processor = None

        # verl binds the model's get_rope_index by the processor's class name, so the name is kept.
        cls = type(processor_name, (base,), {"__init__": __init__, "__module__": __name__,
                                             "__doc__": f"{processor_name} without video (no torchvision)."})
        AutoProcessor.register(getattr(transformers, config_name), cls, exist_ok=True)


def torchvision_available() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def activate() -> None:
    """Register the platform, the engines, the gloo backend and (without torchvision) the image-only
    processors in this process. Idempotent. Only when ``VERL_PLATFORM=cpu`` is this platform used."""
    _register_platform()
    if os.environ.get("VERL_PLATFORM", "").strip().lower() != PLATFORM_NAME:
        return
    _register_engines()
    _install_gloo_backend()
    if not torchvision_available():
        _register_processors()
