"""A KV cache written in place: each layer's keys and values live in a buffer allocated ahead, and a decode step
writes its new token's K/V into it instead of concatenating them onto the whole cache.

Hugging Face's ``DynamicCache`` grows every layer by ``torch.cat`` at every step: a copy of the whole cache per
step, so a decode step costs in proportion to batch x context even for a model whose own compute is tiny (at
batch 8 over a ~700-token multimodal context this was ~20% of a tiny model's rollout). ``InPlaceCache`` holds the
same tensors as ``DynamicCache`` would, so attention sees the same numbers (its keys/values are views of the
filled part of the buffer: same values, another stride); ``generate`` sizes it for the whole call
(``capacity``), and a write past the capacity doubles it (one copy of the filled part), so it also works
unsized.

It is not ``StaticCache``: that one has a fixed length and makes the attention mask cover all of it, which
changes the attention inputs (masked padding columns) and so the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers.cache_utils import Cache, DynamicLayer


class InPlaceLayer(DynamicLayer):
    """One decoder layer's K/V in a buffer [batch, heads, capacity, head_dim]; ``keys`` / ``values`` are views of
    its first ``len`` positions (what ``DynamicLayer`` would hold)."""

    def __init__(self, capacity: int = 0):
        super().__init__()
        self.capacity = capacity
        """Positions to allocate at the first write (at least what it writes)."""
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._len = 0

    @property
    def allocated(self) -> int:
        """Positions the buffer holds now (0 before the first write)."""
        return 0 if self._k is None else self._k.shape[2]

    def _reserve(self, n: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Make room for ``n`` positions: allocate ``max(n, capacity)``, or double (at least to ``n``), keeping
        the filled part."""
        if n <= self.allocated:
            return
        size = max(n, self.capacity) if self._k is None else max(n, 2 * self.allocated)
        b, h = key_states.shape[:2]
        k = key_states.new_empty((b, h, size, key_states.shape[-1]))
        v = value_states.new_empty((b, h, size, value_states.shape[-1]))
        if self._len:
            k[:, :, :self._len] = self._k[:, :, :self._len]
            v[:, :, :self._len] = self._v[:, :, :self._len]
        self._k, self._v = k, v

    def adopt(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        """Take ``key_buffer`` / ``value_buffer`` [batch, heads, capacity, head_dim], whose first ``length``
        positions are filled, as this layer's buffer (no copy; later writes go after ``length``)."""
        if self._len or self._k is not None:
            raise ValueError("adopt a buffer before the first write only")
        if length > key_buffer.shape[2] or key_buffer.shape[:3] != value_buffer.shape[:3]:
            raise ValueError(f"buffers of shapes {tuple(key_buffer.shape)} / {tuple(value_buffer.shape)} cannot "
                             f"hold {length} positions")
        self.lazy_initialization(key_buffer, value_buffer)
        self._k, self._v = key_buffer, value_buffer
        self._set_len(length)

    def _set_len(self, n: int) -> None:
        self._len = n
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new positions after the filled ones; return the keys and values of all filled positions."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self._len + key_states.shape[-2]
        self._reserve(n, key_states, value_states)
        self._k[:, :, self._len:n] = key_states
        self._v[:, :, self._len:n] = value_states
        self._set_len(n)
        return self.keys, self.values

    def crop(self, max_length: int) -> None:
        if max_length < 0:
            max_length = self.get_seq_length() - abs(max_length)
        if self._k is not None and max_length < self._len:
            self._set_len(max(max_length, 0))

    def _select_rows(self, rows: torch.Tensor) -> None:
        if self._k is not None:
            self._k, self._v = self._k[rows.to(self._k.device)], self._v[rows.to(self._v.device)]
            self._set_len(self._len)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._k is not None:
            self._select_rows(torch.arange(self._k.shape[0]).repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._select_rows(torch.as_tensor(indices))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._select_rows(beam_idx)

    def offload(self):
        raise NotImplementedError("InPlaceLayer does not offload (its keys/values are views of its buffer)")

    prefetch = offload


class InPlaceCache(Cache):
    """A ``Cache`` of ``InPlaceLayer`` for every decoder layer (full attention only: a sliding-window layer
    drops old positions, which a write-in-place buffer does not do).

    ``capacity``: positions each layer allocates at its first write (e.g. the prompt width + the new tokens of a
    ``generate`` call; more doubles it). ``kv``: per layer (keys, values) [batch, heads, len, head_dim] to start
    from (copied in)."""

    def __init__(self, num_layers: int, capacity: int = 0,
                 kv: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None):
        super().__init__(layers=[InPlaceLayer(capacity) for _ in range(num_layers)])
        if kv is not None:
            pairs = list(kv)
            if len(pairs) != num_layers:
                raise ValueError(f"kv has {len(pairs)} layers; the cache has {num_layers}")
            for layer, (k, v) in zip(self.layers, pairs):
                layer.update(k, v)

    @classmethod
    def over_buffers(cls, config, buffers: Iterable[tuple[torch.Tensor, torch.Tensor]], length: int) -> InPlaceCache:
        """One for a model with ``config`` whose layers take ``buffers`` (per layer keys, values [batch, heads,
        capacity, head_dim], the first ``length`` positions filled) as their own: ``kv`` without its copy."""
        cache = cls.for_model(config)
        pairs = list(buffers)
        if len(pairs) != len(cache.layers):
            raise ValueError(f"buffers have {len(pairs)} layers; the cache has {len(cache.layers)}")
        for layer, (k, v) in zip(cache.layers, pairs):
            layer.adopt(k, v, length)
        return cache

    @classmethod
    def for_model(cls, config, capacity: int = 0, kv: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None
                  ) -> InPlaceCache:
        """One for the decoder of a model with ``config`` (a multimodal config's text decoder)."""
        text = config.get_text_config(decoder=True)
        layer_types = getattr(text, "layer_types", None) or ["full_attention"]
        if set(layer_types) != {"full_attention"}:
            raise ValueError(f"InPlaceCache holds full-attention layers only; this model has {sorted(set(layer_types))}")
        return cls(text.num_hidden_layers, capacity, kv)
