"""The Hugging Face Qwen-VL policy backend (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): load a local checkpoint
directory offline, generate batched multi-turn continuations with images, score tokens for training.

Sampling and scoring use one distribution: ``softmax((logits with vision special tokens at -inf) / T)``.
Vision special tokens are suppressed because a policy that samples an image pad claims an image that does
not exist (a randomly initialised model does so often). No top-k / top-p, so the recorded sampling
log-probs equal what ``sequence_logprobs`` recomputes and the PPO ratio starts at 1.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from PIL import Image
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from mapo.agent.backend import Context, Generation, PolicyBackend, cut_at_stop
from mapo.models import kv_reuse
from mapo.models.collate import collate_trajectories
from mapo.models.gqa_attention import native_gqa
from mapo.models.inplace_cache import InPlaceCache
from mapo.models.lean_decode import lean_sample
from mapo.models.precision import autocast_context, cast_state_dict, resolve_device, resolve_dtype
from mapo.models.zoo import CHAT_TEMPLATE

_ARCHITECTURES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}


def masked_logprobs(logits: torch.Tensor, suppressed: Sequence[int], temperature: float) -> torch.Tensor:
    """log-softmax of ``logits`` [..., V] / ``temperature`` with ``suppressed`` token ids removed
    (temperature 0 = greedy is scored at 1)."""
    logits = logits.float()
    if suppressed:
        logits = logits.index_fill(-1, torch.tensor(list(suppressed), device=logits.device), float("-inf"))
    return torch.log_softmax(logits / (temperature if temperature > 0 else 1.0), dim=-1)


def entropy_from_logprobs(logp: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each distribution over the last dim; suppressed (-inf) entries count 0."""
    p = logp.exp()
    return -(p * logp.masked_fill(~torch.isfinite(logp), 0.0)).sum(-1)


class _StopOnSequences:
    """Stopping criterion: a row is done once its new tokens hold a stop token id or stop string.

    A stop string absent before the newest token can only appear if that token's text holds the string's last
    character, so a row's tail is decoded only after such a token (``closers``: those token ids; None: after
    every token)."""

    def __init__(self, tokenizer, prompt_len: int, stop: Sequence[str], stop_ids: Sequence[int],
                 closers: set[int] | None = None):
        self.tokenizer, self.prompt_len, self.stop, self.stop_ids = tokenizer, prompt_len, stop, set(stop_ids)
        self.closers = closers

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs) -> torch.BoolTensor:
        return torch.tensor(self.stopped(input_ids[:, -1].tolist(), input_ids), dtype=torch.bool,
                            device=input_ids.device)

    def stopped(self, last: list[int], input_ids: torch.LongTensor) -> list[bool]:
        """Per row, whether it is done, given its newest tokens ``last`` (``input_ids[:, -1]``, which a caller
        holding them as a list passes as is: ``mapo.models.lean_decode``)."""
        done = [t in self.stop_ids for t in last]
        if self.stop and input_ids.shape[1] > self.prompt_len:
            start = max(self.prompt_len, input_ids.shape[1] - 8)
            for i, t in enumerate(last):
                if not done[i] and (self.closers is None or t in self.closers):
                    # the last 8 tokens hold any stop string that the newest token completed
                    tail = self.tokenizer.decode(input_ids[i, start:].tolist(), skip_special_tokens=False)
                    done[i] = any(s in tail for s in self.stop)
        return done


def closing_token_ids(tokenizer, stop: Sequence[str]) -> set[int]:
    """Ids of the tokens whose text holds the last character of some stop string (one pass over the vocabulary)."""
    last_chars = {s[-1] for s in stop if s}
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
    return {i for i, piece in enumerate(pieces) if any(c in piece for c in last_chars)}


class _RecordLogprobs:
    """A logits processor that keeps only the sampled tokens' log-probs, not generate's scores: those are one
    float32 [batch, vocab] row per generated token (128 sequences x 1024 tokens x 152k vocab = 80 GB).

    It sees the suppressed logits (it runs after HF's own processors and before the temperature warper) and
    scores them as ``masked_logprobs`` does; the token drawn from step t is known at step t + 1 (or from the
    final sequences: ``finish``)."""

    def __init__(self, temperature: float):
        self.temperature = temperature if temperature > 0 else 1.0
        self.pending: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def _take(self, tokens: torch.Tensor) -> None:
        if self.pending is not None:
            self.steps.append(self.pending.gather(1, tokens.view(-1, 1)))  # [B, 1]; joined once in ``finish``
            self.pending = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._take(input_ids[:, -1])
        scores = scores.float()
        if self.temperature != 1.0:  # x / 1.0 is x, bit for bit
            scores = scores / self.temperature
        self.pending = torch.log_softmax(scores, dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """[B, n_generated] log-probs once generate returned ``sequences``."""
        self._take(sequences[:, -1])
        return torch.cat(self.steps, dim=1).float().cpu() if self.steps else torch.zeros(sequences.shape[0], 0)


class HFQwenBackend(PolicyBackend):
    """A Qwen-VL ``*ForConditionalGeneration`` with its tokenizer and PIL image processor.

    ``compute_dtype``: the dtype forwards run in (``torch.autocast``) when it is lower than the parameters'
    dtype: fp32 master weights computing in bf16 (``mapo.models.precision``). None: the parameters' dtype."""

    def __init__(self, model, tokenizer, image_processor, family: str, compute_dtype: torch.dtype | None = None):
        self.model, self.tokenizer, self.image_processor, self.family = model, tokenizer, image_processor, family
        self.compute_dtype = compute_dtype
        self.patch_size = int(image_processor.patch_size)
        self.merge_size = int(image_processor.merge_size)
        # The engine resizes every image to the model's grid and budget first; the processor must not resize
        # again, or pads and features would disagree. (A copy: the saved preprocessor config stays as loaded.)
        f = self.patch_size * self.merge_size
        self._pixel_processor = copy.deepcopy(image_processor)
        self._pixel_processor.size = {"shortest_edge": f * f, "longest_edge": 1 << 40}
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = "<|endoftext|>"
        self._closers: dict[tuple[str, ...], set[int]] = {}
        self._pieces: dict[int, str] = {}
        """Each token id's decoded text, memoized for ``cut_at_stop`` (it decodes the generated ids one by one)."""
        self.inplace_cache = True
        """``generate`` writes K/V into a cache sized for the call (``InPlaceCache``) instead of Hugging Face's
        ``DynamicCache``, which concatenates the whole cache at every step. Same numbers either way."""
        self.grouped_attention = True
        """``generate`` keeps the KV heads grouped under a padding mask (``native_gqa``) instead of repeating
        them. Same numbers either way (CPU; elsewhere it changes nothing)."""
        self.lean_decode = True
        """``generate`` runs its decode loop as ``mapo.models.lean_decode.lean_sample`` (Hugging Face's
        ``_sample`` without its per-step overhead) instead of ``_sample``. Same tokens and log-probs either way
        (greedy and, under the same seed, sampled); False falls back to ``_sample``."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def autocast(self):
        """The context every forward of this backend runs in (autocast to ``compute_dtype``, or a no-op)."""
        return autocast_context(self.device, self.compute_dtype, self.model.dtype)

    def pixel_inputs(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """``pixel_values`` [N_patches, D] and ``image_grid_thw`` [N_images, 3] for grid-aligned images."""
        out = self._pixel_processor(images=list(images), return_tensors="pt")
        grid = out["image_grid_thw"]
        expected = torch.tensor([self.image_grid(im) for im in images])
        if not torch.equal(grid.cpu(), expected):
            raise ValueError(f"the image processor resized images to grids {grid.tolist()} instead of "
                             f"{expected.tolist()}; pass images resized with fit_to_budget(factor={self.image_factor})")
        return {"pixel_values": out["pixel_values"].to(self.device, self.model.dtype),
                "image_grid_thw": grid.to(self.device)}

    def save_pretrained(self, out_dir: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write the policy as a standard Hugging Face directory that ``load_policy`` reads back. ``dtype``:
        the weights' dtype on disk (None: the parameters' own, e.g. the fp32 master weights)."""
        if dtype is not None and dtype != self.model.dtype:
            self.model.save_pretrained(out_dir, safe_serialization=True, state_dict=cast_state_dict(self.model, dtype))
            config = copy.deepcopy(self.model.config)  # save_pretrained wrote the in-memory dtype into it
            config.dtype = dtype
            config.save_pretrained(out_dir)
        else:
            self.model.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        self.image_processor.save_pretrained(out_dir)

    def collate(self, trajectories: Sequence[Any]) -> dict[str, torch.Tensor]:
        """The training batch of ``trajectories`` (see ``mapo.models.collate.collate_trajectories``)."""
        batch = collate_trajectories(trajectories, self.pixel_inputs, self.tokenizer.pad_token_id,
                                     self.image_token_id)
        n_pads = int(batch["mm_token_type_ids"].sum())
        n_feats = int(batch["image_grid_thw"].prod(-1).sum()) // self.merge_size ** 2 if "image_grid_thw" in batch \
            else 0
        if n_pads != n_feats:
            raise ValueError(f"the batch has {n_pads} image pad tokens but its images give {n_feats} features; "
                             "trajectories must come from RolloutEngine (it keeps them matched)")
        return {k: v.to(self.device) for k, v in batch.items()}

    @property
    def reuses_kv_cache(self) -> bool:
        """Whether ``generate`` can continue a trajectory from its kept KV cache (``Context.kv``): the model
        computes M-RoPE positions with ``get_rope_index`` and every decoder layer attends to the whole sequence
        (a sliding-window layer drops old keys, so a kept cache would not be the full context)."""
        text = self.model.config.get_text_config(decoder=True)
        layer_types = getattr(text, "layer_types", None) or ["full_attention"]
        return hasattr(self.model.model, "get_rope_index") and set(layer_types) == {"full_attention"} and \
            not getattr(text, "use_sliding_window", False)

    def _attention(self):
        """The attention context of generation forwards (see ``grouped_attention``)."""
        return native_gqa() if self.grouped_attention else contextlib.nullcontext()

    def _closing_ids(self, stop: Sequence[str]) -> set[int]:
        key = tuple(stop)
        if key not in self._closers:
            self._closers[key] = closing_token_ids(self.tokenizer, stop)
        return self._closers[key]

    def _full_inputs(self, contexts: list[Context]) -> tuple[dict[str, torch.Tensor], int]:
        """Every context encoded whole, left-padded: what ``generate`` re-reads when nothing is kept."""
        pad = self.tokenizer.pad_token_id
        width = max(len(c.ids) for c in contexts)
        input_ids = torch.full((len(contexts), width), pad, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for i, c in enumerate(contexts):  # left padding: every row's next token is at the same column
            input_ids[i, width - len(c.ids):] = torch.tensor(c.ids, dtype=torch.long)
            attention_mask[i, width - len(c.ids):] = 1
        images = [im for c in contexts for im in c.images]
        inputs = {"input_ids": input_ids.to(self.device), "attention_mask": attention_mask.to(self.device),
                  "mm_token_type_ids": ((input_ids == self.image_token_id).int() * attention_mask).to(self.device)}
        if images:
            inputs.update(self.pixel_inputs(images))
        return inputs, width

    def _rope_batch(self, states, contexts, room: int = 0) -> kv_reuse.CachedBatch:
        return kv_reuse.batch_over_kept(
            states, contexts, self.tokenizer.pad_token_id, self.image_token_id, self.model.model.get_rope_index,
            lambda images: torch.tensor([self.image_grid(im) for im in images]), room=room)

    def _encode_shared_prompts(self, contexts: list[Context]) -> None:
        """Rows with nothing kept yet whose tokens and images are the same (the G samples of a prompt) are encoded
        once, all but their last token, and that state is put in each row's slot: ``generate`` then feeds each
        row only its last token. (What vLLM/SGLang's prefix caching gives a group of samples.)"""
        groups: dict[tuple, list[int]] = {}
        digests: dict[int, tuple] = {}
        for i, c in enumerate(contexts):
            if c.kv is None or len(c.ids) < 2 or c.ids[-1] == self.image_token_id or \
                    kv_reuse.reusable_prefix(c.kv.state, c.ids, c.images, self.image_token_id) > 0:
                continue
            # each image object hashed once (the G rows of a prompt hold the same one)
            for im in c.images:
                if id(im) not in digests:
                    digests[id(im)] = kv_reuse.image_key(im)
            groups.setdefault((tuple(c.ids), tuple(digests[id(im)] for im in c.images)), []).append(i)
        shared = [rows for rows in groups.values() if len(rows) > 1]
        if not shared:
            return
        from transformers import DynamicCache

        heads = [Context(ids=contexts[rows[0]].ids[:-1], images=contexts[rows[0]].images) for rows in shared]
        batch = self._rope_batch([None] * len(heads), heads)
        inputs = self._batch_inputs(batch)
        with self.autocast(), self._attention():
            out = self.model(**inputs, past_key_values=DynamicCache(config=self.model.config), use_cache=True,
                             logits_to_keep=1)
        layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        states = kv_reuse.keep_after_generate(batch, layers, heads, [[] for _ in heads], self.image_token_id)
        for rows, state in zip(shared, states):
            for i in rows:  # the same tensors (never written in place), each row's own image objects
                contexts[i].kv.state = dataclasses.replace(state, images=list(contexts[i].images))

    def _batch_inputs(self, batch: kv_reuse.CachedBatch) -> dict[str, Any]:
        """The model inputs of a batch of new tokens (ids, mask, M-RoPE positions, the new images' pixels)."""
        dev = self.device
        inputs: dict[str, Any] = {
            "input_ids": batch.input_ids.to(dev), "attention_mask": batch.attention_mask.to(dev),
            "position_ids": batch.position_ids.to(dev),
            "mm_token_type_ids": ((batch.input_ids == self.image_token_id).int() * batch.attention_mask).to(dev)}
        if batch.new_images:
            inputs.update(self.pixel_inputs(batch.new_images))
        return inputs

    def _kept_inputs(self, contexts: list[Context], room: int = 0) -> tuple[dict[str, Any], kv_reuse.CachedBatch]:
        """Contexts continued from their trajectories' kept caches: only the tokens not yet encoded are fed.
        ``room``: new tokens to leave room for in the kept K/V's buffers (``CachedBatch.buffers``)."""
        self._encode_shared_prompts(contexts)
        states = [c.kv.state if c.kv is not None else None for c in contexts]
        batch = self._rope_batch(states, contexts, room)
        return self._batch_inputs(batch), batch

    def _generation_cache(self, width: int, max_new_tokens: int,
                          kv: list[tuple[torch.Tensor, torch.Tensor]] | None,
                          buffers: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
        """The cache a ``generate`` call over ``width`` input columns starts from (``kv``: per layer keys, values
        [B, heads, len, head_dim], or None for nothing kept). With ``inplace_cache`` and full-attention layers only,
        an ``InPlaceCache`` with room for the input and ``max_new_tokens`` more; otherwise a ``DynamicCache`` of
        ``kv`` (None when there is none: ``generate`` makes its own)."""
        from transformers import DynamicCache

        dev = self.device
        if self.inplace_cache and self.reuses_kv_cache and buffers is not None and kv is not None and \
                all(k.device == dev and k.shape[2] >= width + max_new_tokens for k, _ in buffers):
            # ``kv`` already sits at the head of buffers sized for the call: taken over, not copied
            return InPlaceCache.over_buffers(self.model.config, buffers, kv[0][0].shape[2])
        kv = [(k.to(dev), v.to(dev)) for k, v in kv] if kv is not None else None
        if self.inplace_cache and self.reuses_kv_cache:
            return InPlaceCache.for_model(self.model.config, capacity=width + max_new_tokens, kv=kv)
        return DynamicCache(kv, config=self.model.config) if kv is not None else None

    @torch.no_grad()
    def generate(self, contexts: list[Context], max_new_tokens: int | list[int], stop: Sequence[str],
                 temperature: float = 1.0) -> list[Generation]:
        """See ``PolicyBackend.generate``. Contexts that carry a ``kv`` slot are continued from the K/V kept there
        at their previous turn (only new tokens are encoded) and leave their new state in it."""
        if not contexts:
            return []
        limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(contexts)
        pad = self.tokenizer.pad_token_id
        keep = any(c.kv is not None for c in contexts) and self.reuses_kv_cache
        batch = None
        if keep:
            room = max(limits) if self.inplace_cache else 0
            inputs, batch = self._kept_inputs(contexts, room)
            width = batch.input_ids.shape[1]
        else:
            inputs, width = self._full_inputs(contexts)
        cache = self._generation_cache(width, max(limits), batch.cache if batch is not None else None,
                                       batch.buffers if batch is not None else None)
        if cache is not None:
            inputs["past_key_values"] = cache
        stop_ids = [self.tokenizer.convert_tokens_to_ids(s) for s in stop if s in self.tokenizer.get_added_vocab()]

        sample = temperature > 0
        gen_cfg = GenerationConfig(max_new_tokens=max(limits), do_sample=sample,
                                   temperature=temperature if sample else None, top_k=0 if sample else None,
                                   top_p=1.0 if sample else None, suppress_tokens=self.suppressed_token_ids,
                                   pad_token_id=pad, eos_token_id=stop_ids or None, return_dict_in_generate=True)
        # the sampled tokens' log-probs under softmax(suppressed logits / T): what sequence_logprobs recomputes
        recorder = _RecordLogprobs(temperature)
        self.model.eval()
        with self.autocast(), self._attention():
            out = self.model.generate(**inputs, generation_config=gen_cfg,
                                      custom_generate=lean_sample if self.lean_decode else None,
                                      logits_processor=LogitsProcessorList([recorder]),
                                      stopping_criteria=StoppingCriteriaList(
                                          [_StopOnSequences(self.tokenizer, width, stop, stop_ids,
                                                            self._closing_ids(stop))]))
        new = out.sequences[:, width:].cpu()
        logp_tokens = recorder.finish(out.sequences)
        results = []
        for i, limit in enumerate(limits):
            ids = new[i, :limit].tolist()
            n, stopped = cut_at_stop(self.tokenizer, ids, stop, stop_ids, self._pieces)
            ids = ids[:n]
            lp = logp_tokens[i, :n] if n else torch.zeros(0)
            results.append(Generation(ids=ids, logprobs=lp, text=self.decode(ids), stopped=stopped))
        if batch is not None:
            layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            states = kv_reuse.keep_after_generate(batch, layers, contexts, [r.ids for r in results],
                                                  self.image_token_id)
            for c, state in zip(contexts, states):
                if c.kv is not None:
                    c.kv.state = state
        return results

    def sequence_logprobs(self, batch, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs and entropy of every generated response token, both [B, L] aligned with ``response_mask``
        (0 where the mask is 0: observation tokens and padding). ``batch``: trajectories or a ``collate`` dict. Differentiable; the caller
        chooses train/eval mode and ``torch.no_grad``."""
        if not isinstance(batch, dict):
            batch = self.collate(batch)
        kwargs = {k: batch[k] for k in ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values",
                                        "image_grid_thw") if k in batch}
        B, L = batch["response_ids"].shape
        with self.autocast():
            hidden = self.model.model(**kwargs, use_cache=False).last_hidden_state  # [B, S, H]
            # The token at position p is predicted at p - 1. Project only those positions onto the vocabulary:
            # [B, L, V] instead of [B, S, V] (a 150k vocabulary makes the difference).
            pos = (batch["response_start"][:, None] - 1 + torch.arange(L, device=hidden.device)[None, :])
            pos = pos.clamp(max=hidden.shape[1] - 1)
            picked = torch.gather(hidden, 1, pos[..., None].expand(B, L, hidden.shape[-1]))  # [B, L, H]
            logits = self.model.lm_head(picked)  # [B, L, V]
        logp = masked_logprobs(logits, self.suppressed_token_ids, temperature)
        token_logp = torch.gather(logp, -1, batch["response_ids"][..., None]).squeeze(-1)
        # Observation tokens (image pads included) are not the policy's: they get 0, not the -inf a
        # suppressed vision token would score.
        scored = batch["response_mask"].bool()
        zero = torch.zeros((), device=logits.device)
        return torch.where(scored, token_logp, zero), torch.where(scored, entropy_from_logprobs(logp), zero)


def _family(config: dict, path: Path) -> str:
    mt = config.get("model_type")
    if mt in _ARCHITECTURES:
        return mt
    raise ValueError(f"{path}/config.json has model_type={mt!r}; mapo's backend supports {sorted(_ARCHITECTURES)}")


def load_policy(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
                trust_remote_code: bool = False, master_weights: bool = False,
                fast_generation: bool = True) -> HFQwenBackend:
    """Load a local Qwen-VL checkpoint directory (config.json, weights, tokenizer, preprocessor_config.json)
    without network access. Raises ``FileNotFoundError`` naming the path and the missing file.

    ``device`` / ``dtype``: names or torch objects; ``auto`` picks CUDA when present (and bfloat16 there).
    ``master_weights`` (training): the parameters load in float32 and ``dtype`` becomes the compute dtype of
    every forward (autocast), so optimizer updates are not rounded to ``dtype``; otherwise (inference) the
    weights load in ``dtype`` itself. ``fast_generation``: the backend's ``inplace_cache``, ``grouped_attention``
    and ``lean_decode`` (same tokens and log-probs as Hugging Face's own path; False: that path)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"policy checkpoint {path} is not a directory; build one with `mapo model init` "
                                "or pass a local Hugging Face checkpoint directory")
    missing = [n for n in ("config.json", "preprocessor_config.json") if not (path / n).exists()]
    if not any((path / n).exists() for n in ("tokenizer.json", "tokenizer_config.json")):
        missing.append("tokenizer.json")
    if not list(path.glob("*.safetensors")) and not list(path.glob("*.bin")):
        missing.append("model weights (*.safetensors)")
    if missing:
        raise FileNotFoundError(f"policy checkpoint {path} lacks {', '.join(missing)}; it must be a complete "
                                "Hugging Face directory (see mapo.models.zoo.build_tiny_model)")
    family = _family(json.loads((path / "config.json").read_text()), path)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device) if dtype is not None else torch.float32
    common = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, **common)
    # Prefer the checkpoint's own template files: in Qwen-VL releases these are the processor's templates,
    # which render image items (the tokenizer_config one may be the text-only template).
    for name in ("chat_template.jinja", "chat_template.json"):
        f = path / name
        if f.exists():
            text = f.read_text()
            tokenizer.chat_template = json.loads(text)["chat_template"] if name.endswith(".json") else text
            break
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True)
    cls = getattr(transformers, _ARCHITECTURES[family])
    param_dtype = torch.float32 if master_weights else dtype
    model = cls.from_pretrained(path, dtype=param_dtype, **common).to(device)
    backend = HFQwenBackend(model, tokenizer, image_processor, family,
                            compute_dtype=dtype if dtype != param_dtype else None)
    backend.inplace_cache = backend.grouped_attention = backend.lean_decode = fast_generation
    return backend
