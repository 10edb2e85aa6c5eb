"""``rollout.name=hf``: a transformers-``generate`` rollout for verl, for CPU smoke tests and debugging.

verl 0.9.1's trainer drives rollouts through two registries, both listing only vLLM, SGLang and TensorRT-LLM:
``RolloutReplicaRegistry`` (the replica the agent loop sends token-in-token-out requests to) and
``verl.workers.rollout.base._ROLLOUT_REGISTRY`` (the worker-side object the FSDP workers push weights into).
This module registers ``hf`` in both (on import; :mod:`mapo.integrations.verl.cpu` imports it):

- :class:`HFRolloutServer` - a Ray actor holding a transformers copy of the policy; ``generate`` samples with
  ``model.generate`` (vision special tokens suppressed: a random tiny model samples them otherwise), or
  replays a *script* (``rollout.custom.script``: a JSON file of trajectories, each a list of assistant turns)
  to drive known trajectories through verl;
- :class:`HFRolloutReplica` - launches one server per replica;
- :class:`HFServerAdapter` - the worker side: at each weight sync it gathers the actor's full weights and
  loads them into the server, so sampling follows the policy being trained.

One process generates one request at a time: this is for tiny models and correctness, not throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Generator
from typing import Any

import ray
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText
from verl.utils.tokenizer import hf_processor, hf_tokenizer
from verl.workers.rollout.base import _ROLLOUT_REGISTRY, BaseRollout
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput

from mapo.integrations.verl.debug_dump import dump_dir, dump_weights

ROLLOUT_NAME = "hf"


def server_name(replica_rank: int, suffix: str = "") -> str:
    """The Ray actor name of replica ``replica_rank``'s server (the adapter finds it by this name)."""
    return f"mapo_hf_rollout_{replica_rank}{suffix}"


class Script:
    """Scripted assistant turns: trajectory ``k`` of a prompt replays ``turns[k % len(turns)]``.

    A new trajectory is recognised by a prompt that continues no earlier output; a later turn by a prompt that
    starts with an earlier turn's prompt + output (the agent loop appends tool responses after it)."""

    def __init__(self, trajectories: list[list[str]], tokenizer):
        if not trajectories or not all(trajectories):
            raise ValueError("rollout.custom.script: need a non-empty list of trajectories, each a non-empty "
                             "list of assistant turns (strings)")
        self.turns = [[tokenizer.encode(t, add_special_tokens=False) + [tokenizer.eos_token_id] for t in traj]
                      for traj in trajectories]
        self._issued: dict[tuple[int, ...], tuple[int, int]] = {}  # prompt + output -> (trajectory, turn)
        self._per_prompt: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str, tokenizer) -> Script:
        with open(path) as f:
            return cls(json.load(f), tokenizer)

    def next_turn(self, prompt_ids: list[int]) -> list[int]:
        """The scripted output for this prompt (the last scripted turn repeats if the loop asks for more)."""
        with self._lock:
            key = tuple(prompt_ids)
            best = None
            for issued, (traj, turn) in self._issued.items():
                if len(issued) < len(key) and key[:len(issued)] == issued and (
                        best is None or len(issued) > best[0]):
                    best = (len(issued), traj, turn + 1)
            if best is None:
                k = self._per_prompt.get(key, 0)
                self._per_prompt[key] = k + 1
                traj, turn = k % len(self.turns), 0
            else:
                _, traj, turn = best
            out = self.turns[traj][min(turn, len(self.turns[traj]) - 1)]
            self._issued[key + tuple(out)] = (traj, turn)
            return list(out)


class HFRolloutServer:
    """A Ray actor serving verl's token-in-token-out ``generate`` with a transformers model on CPU."""

    def __init__(self, rollout_config: Any, model_path: str, replica_rank: int = 0):
        self.config = rollout_config
        self.replica_rank = replica_rank
        self.tokenizer = hf_tokenizer(model_path)
        self.processor = hf_processor(model_path)
        self.model = self._load_model(model_path)
        custom = dict(getattr(rollout_config, "custom", None) or {})
        self.script = Script.from_file(custom["script"], self.tokenizer) if custom.get("script") else None
        self.suppressed = [i for i in (self.tokenizer.convert_tokens_to_ids(t) for t in (
            "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>"))
            if isinstance(i, int) and i != self.tokenizer.unk_token_id]
        self.weight_syncs = 0
        self.dump_dir = dump_dir()
        self._lock = asyncio.Lock()

    @staticmethod
    def _load_model(path: str):
        config = AutoConfig.from_pretrained(path)
        auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
        model = auto.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
        return model.eval()

    def _generate(self, prompt_ids: list[int], sampling_params: dict[str, Any], image_data: list | None
                  ) -> tuple[list[int], list[float] | None]:
        cfg = self.config
        max_tokens = sampling_params.get("max_tokens") or sampling_params.get("max_new_tokens") or min(
            cfg.response_length, cfg.prompt_length + cfg.response_length - len(prompt_ids))
        max_tokens = max(1, int(max_tokens))
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        image_token = getattr(self.model.config, "image_token_id", None)
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if image_token is not None:
            inputs["mm_token_type_ids"] = (input_ids == image_token).int()
        if image_data:
            pixels = self.processor.image_processor(images=list(image_data), return_tensors="pt")
            inputs.update(pixel_values=pixels["pixel_values"], image_grid_thw=pixels["image_grid_thw"])
        temperature = float(sampling_params.get("temperature", 1.0))
        sample = temperature > 0
        top_k = int(sampling_params.get("top_k", -1))
        with torch.no_grad():
            out = self.model.generate(
                **inputs, max_new_tokens=max_tokens, do_sample=sample,
                temperature=temperature if sample else None, top_p=float(sampling_params.get("top_p", 1.0)),
                top_k=max(0, top_k), suppress_tokens=self.suppressed or None,
                eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
                output_scores=True, return_dict_in_generate=True)
        ids = out.sequences[0, input_ids.shape[1]:].tolist()
        logprobs = None
        if sampling_params.get("logprobs"):
            scores = torch.log_softmax(torch.stack(out.scores, 1)[0].float(), -1)
            logprobs = scores[torch.arange(len(ids)), torch.tensor(ids)].tolist()
        return ids, logprobs

    async def generate(self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str,
                       image_data: list | None = None, video_data: list | None = None, **kwargs: Any):
        """verl's server ``generate``: ``TokenOutput`` with the response token ids (and log-probs if asked)."""
        if video_data:
            raise ValueError("rollout.name=hf: video inputs are not supported (images only)")
        prompt_ids = [int(t) for t in prompt_ids]
        async with self._lock:
            if self.script is not None:
                ids, logprobs = self.script.next_turn(prompt_ids), None
            else:
                ids, logprobs = await asyncio.to_thread(self._generate, prompt_ids, dict(sampling_params),
                                                        image_data)
        return TokenOutput(token_ids=ids, log_probs=logprobs, stop_reason="completed",
                           extra_fields={"global_steps": self.weight_syncs})

    async def load_weights(self, state: dict[str, torch.Tensor], global_steps: int | None = None) -> int:
        """Load the actor's weights (HF parameter names); returns how many tensors were loaded."""
        async with self._lock:
            own = self.model.state_dict()
            missing = [k for k in state if k not in own]
            if missing:
                raise KeyError(f"rollout.name=hf: {len(missing)} weight(s) from the actor have no match in the "
                               f"rollout model, e.g. {missing[:3]}; actor and rollout must load the same "
                               "model.path")
            self.model.load_state_dict(state, strict=False)
            self.weight_syncs += 1
            dump_weights(self.dump_dir, self.replica_rank, self.weight_syncs, global_steps, state)
        return len(state)

    # verl's replica control calls: nothing to free or resume for a CPU copy of a tiny model.
    async def wake_up(self):
        return None

    async def sleep(self):
        return None

    async def abort_all_requests(self, reject_request: bool = False):
        return None

    async def resume_generation(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None


class HFRolloutReplica(RolloutReplica):
    """One :class:`HFRolloutServer` per replica, next to the FSDP workers (hybrid mode)."""

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self):
        name = server_name(self.replica_rank, self.name_suffix)
        path = self.model_config.get("path") if hasattr(self.model_config, "get") else self.model_config.path
        server = ray.remote(HFRolloutServer).options(
            name=name, num_cpus=0, max_concurrency=self.max_concurrency).remote(
            self.config, str(path), self.replica_rank)
        self.servers = [server]
        self._server_handle = server
        self._server_address = name


class HFServerAdapter(BaseRollout):
    """Worker side of ``rollout.name=hf``: pushes the actor's full weights to its replica's server."""

    def __init__(self, config, model_config, device_mesh, *args, **kwargs):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        per_replica = (self.config.tensor_model_parallel_size * self.config.data_parallel_size
                       * self.config.pipeline_model_parallel_size)
        self.replica_rank = rank // per_replica
        self.is_leader = rank % per_replica == 0

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    async def update_weights(self, weights: Generator[tuple[str, torch.Tensor], None, None],
                             wire_format: str = "named_tensors", **kwargs):
        if wire_format != "named_tensors":
            raise ValueError(f"rollout.name=hf takes full named tensors, not {wire_format!r}")
        state = {}
        for name, tensor in weights:  # every rank iterates: the generator gathers sharded tensors
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().to("cpu", copy=True)
        if self.is_leader:
            server = ray.get_actor(server_name(self.replica_rank))
            await server.load_weights.remote(state, kwargs.get("global_steps"))


def register_hf_rollout() -> None:
    """Add ``hf`` to verl's replica registry and worker-side rollout registry (idempotent)."""
    RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: HFRolloutReplica)
    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{HFServerAdapter.__module__}.{HFServerAdapter.__qualname__}"
