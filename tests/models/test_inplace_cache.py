"""The in-place KV cache (``mapo.models.inplace_cache``) and grouped-query attention with a mask
(``mapo.models.gqa_attention``): both must give exactly the numbers of what they replace (Hugging Face's
``DynamicCache``, Transformers' ``sdpa`` attention), bit for bit, on batched rows of different lengths
(left padding, so a mask), through decode steps, and when the cache's capacity grows."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from mapo.models.gqa_attention import native_gqa, sdpa_native_gqa
from mapo.models.inplace_cache import InPlaceCache, InPlaceLayer


def _kv(b=3, h=2, n=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, h, n, d, generator=g), torch.randn(b, h, n, d, generator=g)


# -- the cache alone ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 3, 7, 100])
def test_layer_holds_what_dynamic_cache_holds_and_doubles_when_full(capacity):
    layer, ref = InPlaceLayer(capacity), DynamicCache()
    allocated = []
    for step, n in enumerate([5, 1, 1, 3, 1, 1, 1, 9, 1]):
        k, v = _kv(n=n, seed=step)
        keys, values = layer.update(k, v)
        rk, rv = ref.update(k, v, layer_idx=0)
        assert torch.equal(keys, rk) and torch.equal(values, rv)
        assert layer.get_seq_length() == ref.get_seq_length() == keys.shape[2]
        assert layer.get_mask_sizes(1) == ref.layers[0].get_mask_sizes(1)
        allocated.append(layer.allocated)
    assert allocated[0] == max(5, capacity)
    # it grows only when a write does not fit, to at least twice what it held
    for before, after in itertools.pairwise(allocated):
        assert after == before or after >= 2 * before


def test_a_write_does_not_touch_earlier_tensors_returned_by_the_cache():
    layer = InPlaceLayer(capacity=4)
    k, v = _kv(n=2)
    first = layer.update(k, v)[0].clone()
    held = layer.keys
    layer.update(*_kv(n=1, seed=1))
    assert torch.equal(held, first)  # the view of the filled part is unchanged by a write after it
    layer.update(*_kv(n=5, seed=2))  # grows: the old buffer is left as it was
    assert torch.equal(held, first) and torch.equal(layer.keys[:, :, :2], first)


def test_crop_and_row_selection_match_dynamic_cache():
    layer, ref = InPlaceLayer(8), DynamicCache()
    for step, n in enumerate([4, 1, 1]):
        k, v = _kv(n=n, seed=step)
        layer.update(k, v)
        ref.update(k, v, layer_idx=0)
    layer.crop(-2)
    ref.crop(-2)
    assert torch.equal(layer.keys, ref.layers[0].keys)
    rows = torch.tensor([2, 0])
    layer.batch_select_indices(rows)
    ref.batch_select_indices(rows)
    layer.batch_repeat_interleave(2)
    ref.batch_repeat_interleave(2)
    k, v = _kv(b=4, n=1, seed=9)
    assert torch.equal(layer.update(k, v)[1], ref.update(k, v, layer_idx=0)[1])


def test_cache_starts_from_given_tensors_and_refuses_a_layer_count_mismatch():
    pairs = [_kv(seed=0), _kv(seed=1)]
    cache = InPlaceCache(2, capacity=10, kv=pairs)
    assert cache.get_seq_length() == 5 and all(layer.allocated == 10 for layer in cache.layers)
    assert all(torch.equal(layer.keys, k) for layer, (k, _) in zip(cache.layers, pairs))
    with pytest.raises(ValueError, match="layers"):
        InPlaceCache(3, kv=pairs)


# -- grouped-query attention with a mask ----------------------------------------------------------------------


class _Attn(torch.nn.Module):
    num_key_value_groups = 2
    is_causal = True


def _attention_inputs(q_len, kv_len, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, 4, q_len, 8, generator=g)
    k, v = torch.randn(b, 2, kv_len, 8, generator=g), torch.randn(b, 2, kv_len, 8, generator=g)
    mask = torch.ones(b, 1, q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len)
    for i in range(b):
        mask[i, :, :, :3 * i] = False  # left padding of different lengths
    return q, k, v, mask


@pytest.mark.parametrize("q_len,kv_len", [(1, 40), (6, 40), (40, 40)])
def test_native_gqa_is_bit_identical_to_repeated_heads(q_len, kv_len):
    q, k, v, mask = _attention_inputs(q_len, kv_len)
    with torch.no_grad():
        ref, _ = sdpa_attention_forward(_Attn(), q, k, v, mask, scaling=0.3)
        out, _ = sdpa_native_gqa(_Attn(), q, k, v, mask, scaling=0.3)
        strided, _ = sdpa_native_gqa(_Attn(), q, *(torch.cat([t, t], 2)[:, :, :kv_len] for t in (k, v)), mask,
                                     scaling=0.3)  # views of a larger buffer, as InPlaceCache returns
    assert torch.equal(out, ref) and torch.equal(strided, ref)


def test_native_gqa_leaves_gradient_calls_to_transformers(monkeypatch):
    calls = []
    monkeypatch.setattr("mapo.models.gqa_attention.sdpa_attention_forward",
                        lambda *a, **k: calls.append(1) or sdpa_attention_forward(*a, **k))
    q, k, v, mask = _attention_inputs(3, 10)
    sdpa_native_gqa(_Attn(), q.requires_grad_(), k, v, mask)  # a training forward
    assert calls == [1]
    with torch.no_grad():
        sdpa_native_gqa(_Attn(), q, k, v, mask)
    assert calls == [1]


def test_native_gqa_is_scoped():
    before = ALL_ATTENTION_FUNCTIONS["sdpa"]
    with native_gqa():
        assert ALL_ATTENTION_FUNCTIONS["sdpa"] is sdpa_native_gqa
        with pytest.raises(RuntimeError), native_gqa():
            raise RuntimeError
        assert ALL_ATTENTION_FUNCTIONS["sdpa"] is sdpa_native_gqa
    assert ALL_ATTENTION_FUNCTIONS["sdpa"] is before
    assert "sdpa" not in ALL_ATTENTION_FUNCTIONS._local_mapping


def test_native_gqa_used_by_two_threads_restores_the_mapping_when_both_are_done():
    """Thread A enters, B enters, A leaves while B is still inside, then B leaves: B keeps the native path to its
    end, and the mapping ends as it began (before the count, A's exit removed it under B, and B's exit installed
    it for good)."""
    import threading

    before = ALL_ATTENTION_FUNCTIONS["sdpa"]
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def a():
        with native_gqa():
            a_in.set()
            b_in.wait()
        a_out.set()

    def b():
        a_in.wait()
        with native_gqa():
            b_in.set()
            a_out.wait()
            seen.append(ALL_ATTENTION_FUNCTIONS["sdpa"])

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen == [sdpa_native_gqa]
    assert ALL_ATTENTION_FUNCTIONS["sdpa"] is before and "sdpa" not in ALL_ATTENTION_FUNCTIONS._local_mapping


# -- a real model: prefill, then decode steps, batched rows of different lengths -----------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from mapo.models.hf_qwen import load_policy
    from mapo.models.zoo import build_tiny_model, train_tokenizer

    tok = train_tokenizer(["<think>look closer</think><answer>B</answer> the red square"] * 20, vocab_size=400)
    return load_policy(build_tiny_model(tmp_path_factory.mktemp("inplace") / "m", tok, family="qwen2_5_vl", seed=0))


def _decode(model, cache, steps, lengths, seed=0):
    """Left-padded text rows of ``lengths``; prefill, then ``steps`` greedy decode steps; every step's logits."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(10, 300, (len(lengths), width), generator=g)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, width - n:] = 1
    logits = []
    with torch.no_grad():
        for _ in range(steps):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            new = ids if not logits else ids[:, -1:]
            out = model(input_ids=new, attention_mask=mask, position_ids=pos[:, -new.shape[1]:],
                        past_key_values=cache, use_cache=True)
            logits.append(out.logits[:, -1])
            ids = torch.cat([ids, out.logits[:, -1].argmax(-1, keepdim=True)], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    return torch.stack(logits, 1)


@pytest.mark.parametrize("gqa", [False, True])
@pytest.mark.parametrize("capacity", [0, 21, 64])
def test_model_logits_are_bit_identical_to_dynamic_cache(tiny_model, capacity, gqa, monkeypatch):
    """Rows of 7, 19 and 3 tokens (width 19), 12 steps: capacity 0 and 21 make the buffer grow mid-decode."""
    model, lengths = tiny_model.model.eval(), [7, 19, 3]
    ref = _decode(model, DynamicCache(config=model.config), 12, lengths)
    delegated = []
    monkeypatch.setattr("mapo.models.gqa_attention.sdpa_attention_forward",
                        lambda *a, **k: delegated.append(1) or sdpa_attention_forward(*a, **k))
    cache = InPlaceCache.for_model(model.config, capacity=capacity)
    with native_gqa() if gqa else torch.no_grad():
        out = _decode(model, cache, 12, lengths)
    assert torch.equal(out, ref)
    assert not gqa or not delegated  # every step had a padding mask: all took the grouped path
    assert cache.layers[0].allocated >= 19 + 11 and (capacity != 21 or cache.layers[0].allocated == 42)


def test_cache_over_buffers_takes_them_without_a_copy():
    k, v = torch.randn(2, 2, 9, 4), torch.randn(2, 2, 9, 4)
    cache = InPlaceCache(2, capacity=9, kv=[(k[:, :, :5], v[:, :, :5])] * 2)  # the copying way
    taken = InPlaceCache(2)
    for layer, (kb, vb) in zip(taken.layers, [(k.clone(), v.clone()), (k.clone(), v.clone())]):
        layer.adopt(kb, vb, 5)
    assert taken.get_seq_length() == 5 and all(layer.allocated == 9 for layer in taken.layers)
    new_k, new_v = torch.randn(2, 2, 2, 4), torch.randn(2, 2, 2, 4)
    for a, b in zip(cache.layers, taken.layers):
        ka, va = a.update(new_k, new_v)
        kb, vb = b.update(new_k, new_v)
        assert torch.equal(ka, kb) and torch.equal(va, vb)
    buf = taken.layers[0]._k
    assert buf.data_ptr() == taken.layers[0].keys.data_ptr()  # written where it was given
    with pytest.raises(ValueError):
        taken.layers[0].adopt(k, v, 5)  # only before the first write
