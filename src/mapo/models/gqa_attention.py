"""Grouped-query attention with a padding mask on CPU, without copying the key/value heads.

Transformers' ``sdpa`` attention passes ``enable_gqa=True`` to ``scaled_dot_product_attention`` only when there
is no attention mask (``use_gqa_in_sdpa``: on CUDA a mask sends SDPA to its math kernel, which has no GQA).
Otherwise it repeats each key/value head ``num_key_value_groups`` times first: a copy of the whole cache at
every layer of every decode step. A batch of left-padded rows always has a mask, so a batched rollout pays that
copy where a single row does not. On CPU the SDPA kernel takes the mask and GQA together, and its forward gives
the same numbers bit for bit either way (``tests/models/test_inplace_cache.py``).

``native_gqa()`` routes ``sdpa`` to that call while it is active, for forwards without gradients on CPU tensors
only: every other call (training forwards, whose backward sums the heads' gradients in another order, other
devices, no mask) goes to Transformers' own function unchanged. It is scoped (entered around ``generate``), so
models outside it, e.g. another library's in the same process, are not touched once every user has left it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


def sdpa_native_gqa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                    is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """Transformers' ``sdpa_attention_forward``, except that a masked no-grad CPU call keeps the KV heads
    grouped (``enable_gqa``) instead of repeating them."""
    groups = getattr(module, "num_key_value_groups", 1)
    if attention_mask is None or groups == 1 or key.device.type != "cpu" or torch.is_grad_enabled() or \
            kwargs.get("output_attentions", False):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    # with a mask, Transformers' function passes is_causal=False (the mask holds the causal pattern)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           dropout_p=dropout, scale=scaling, is_causal=False,
                                                           enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


_lock = threading.Lock()
_active = 0
_saved: tuple[bool, object] = (False, None)


@contextlib.contextmanager
def native_gqa() -> Iterator[None]:
    """While active, models using ``sdpa`` attention run it through ``sdpa_native_gqa``. Counted: nested or
    concurrent uses (two threads generating) install it once, and the last one out restores what was there."""
    global _active, _saved
    with _lock:
        if _active == 0:
            local = ALL_ATTENTION_FUNCTIONS._local_mapping
            _saved = ("sdpa" in local, local.get("sdpa"))
            ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa_native_gqa
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                had, before = _saved
                if had:
                    ALL_ATTENTION_FUNCTIONS["sdpa"] = before
                else:
                    del ALL_ATTENTION_FUNCTIONS["sdpa"]
