"""The lean decode loop (``mapo.models.lean_decode``, ``HFQwenBackend.lean_decode``) against Hugging Face's
``_sample``: the same forward inputs at every step, and the same tokens and recorded log-probs bit for bit,
greedy and sampled under one seed, over batched rows of different lengths, multi-turn rollouts with kept caches
and crops, stop strings, stop tokens and the max-token limit."""

from __future__ import annotations

import functools

import pytest
import torch

from mapo.agent.backend import Context
from mapo.models.hf_qwen import load_policy
from mapo.models.lean_decode import sample_like_multinomial

from .test_kv_cache import FAMILIES, _rollout, dirs  # noqa: F401  (fixture)


@pytest.mark.parametrize("rows,vocab", [(1, 7), (16, 711), (5, 3000)])
def test_sampling_draws_what_multinomial_draws(rows, vocab):
    gen = torch.Generator().manual_seed(rows)
    for trial in range(50):
        logits = torch.randn(rows, vocab, generator=gen) * (1 + trial % 5)
        logits[:, ::7] = float("-inf")  # suppressed entries: probability 0
        probs = torch.softmax(logits, -1)
        torch.manual_seed(trial)
        want = torch.multinomial(probs, 1).squeeze(1)
        after_want = torch.rand(3)
        torch.manual_seed(trial)
        got = sample_like_multinomial(probs)
        assert torch.equal(got, want)
        assert torch.equal(torch.rand(3), after_want)  # the same generator state afterwards


def _generate(policy, contexts, limits, stop, temperature, lean, seed=0):
    policy.lean_decode = lean
    torch.manual_seed(seed)
    out = policy.generate(contexts, limits, stop, temperature)
    return [(g.ids, g.logprobs, g.stopped, g.text) for g in out], torch.rand(2)


def _contexts(policy, make_task, n=5):
    from mapo.data.images import fit_to_budget

    image = fit_to_budget(make_task().image, 112 * 112, factor=policy.image_factor)
    tok = policy.tokenizer
    base = tok("<|im_start|>user\nhello there, what colour is the small square?")["input_ids"]
    pads = tok.convert_tokens_to_ids(["<|vision_start|>"]) + [policy.image_token_id] * policy.image_tokens(image) + \
        tok.convert_tokens_to_ids(["<|vision_end|>"])
    out = []
    for i in range(n):  # rows of different lengths; some with the image
        ids = base[: 3 + 2 * i] + (pads if i % 2 == 0 else [])
        out.append(Context(ids=list(ids), images=[image] if i % 2 == 0 else []))
    return out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7])
def test_batched_generate_is_bit_identical(family, dirs, make_task, temperature):  # noqa: F811
    policy = load_policy(dirs[family])
    ctx = _contexts(policy, make_task)
    for stop, limits in ((["</answer>", "<|im_end|>"], [12, 30, 5, 30, 20]), ([], 25), (["e"], 40)):
        hf, hf_after = _generate(policy, ctx, limits, stop, temperature, lean=False)
        lean, lean_after = _generate(policy, ctx, limits, stop, temperature, lean=True)
        for (ids_a, lp_a, st_a, tx_a), (ids_b, lp_b, st_b, tx_b) in zip(hf, lean, strict=True):
            assert ids_a == ids_b and st_a == st_b and tx_a == tx_b
            assert torch.equal(lp_a, lp_b)
        assert torch.equal(hf_after, lean_after)  # the same number of draws
    # the rows really differ in how they end: a stop string, the limit
    assert len({len(g[0]) for g in lean}) > 1


def test_every_forward_gets_the_inputs_generate_gives_it(dirs, make_task, monkeypatch):  # noqa: F811
    policy = load_policy(dirs["qwen2_5_vl"])
    ctx = _contexts(policy, make_task)
    calls: dict[bool, list[dict]] = {}
    real = type(policy.model).forward

    @functools.wraps(real)  # generate validates its kwargs against the forward's signature
    def spy(self, *args, **kwargs):
        calls[policy.lean_decode].append({k: (v.clone() if isinstance(v, torch.Tensor) else
                                              type(v).__name__ if v is not None and k == "past_key_values" else v)
                                          for k, v in kwargs.items()})
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(policy.model), "forward", spy)
    for lean in (False, True):
        calls[lean] = []
        _generate(policy, ctx, 20, ["</answer>"], 1.0, lean=lean)
    assert len(calls[False]) == len(calls[True]) > 5
    for a, b in zip(calls[False], calls[True], strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], torch.Tensor):
                assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
            else:
                assert a[k] == b[k], k


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_multi_turn_rollouts_are_bit_identical(dirs, call_text, make_task, temperature):  # noqa: F811
    """Whole rollouts (kept caches, shared prompts, crops, scripted turns, ragged rows): every token and every
    recorded log-prob the same with and without the lean loop."""
    policy = load_policy(dirs["qwen2_5_vl"])
    policy.lean_decode = True
    lean = _rollout(policy, call_text, make_task, kv_cache=True, temperature=temperature)
    policy.lean_decode = False
    hf = _rollout(policy, call_text, make_task, kv_cache=True, temperature=temperature)
    for a, b in zip(hf, lean, strict=True):
        assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.response_mask, b.response_mask)
        assert torch.equal(a.old_logprobs, b.old_logprobs)
        assert a.stop_reason == b.stop_reason and len(a.images) == len(b.images)
    policy.lean_decode = True
    plain = _rollout(policy, call_text, make_task, kv_cache=False, temperature=temperature)
    for a, b in zip(hf, plain, strict=True):  # and the re-encoding path too
        assert torch.equal(a.response_ids, b.response_ids)
