"""KV cache kept across turns (``ProtocolConfig.kv_cache``): the rollout engine continues each trajectory from
the keys/values of its previous turn and encodes only the new tokens. Its outputs must be those of re-encoding
the whole context every turn: the same token ids in every turn of every trajectory, greedy and sampled with a
fixed seed, for each Qwen-VL family, over a batch whose trajectories take different numbers of turns, reach
different lengths and receive crops (images) in their observations."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.models import kv_reuse
from mapo.models.hf_qwen import load_policy
from mapo.models.scripted import ScriptedBackend

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


@pytest.fixture(scope="module")
def dirs(tiny_dirs, tmp_path_factory, tokenizer):
    from mapo.models.zoo import build_tiny_model

    out = dict(tiny_dirs)
    out["qwen2_vl"] = build_tiny_model(tmp_path_factory.mktemp("tiny-q2") / "qwen2_vl", tokenizer, family="qwen2_vl",
                                       seed=0)
    return out


class Mixed:
    """The real model, except on the (sample, turn) pairs of ``script``, which replay a text (a zoom that brings
    a crop, or an answer that ends the trajectory early). Scripted and model rows of a turn are split, so the
    model still generates its rows batched, and scripted turns leave the kept cache behind the context."""

    def __init__(self, real, script):
        self.real, self.script = real, script
        self.scripted = ScriptedBackend(like=real, script=lambda c: script[c.key[1]][c.turn])

    def generate(self, contexts, max_new_tokens, stop, temperature=1.0):
        limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(contexts)
        out = [None] * len(contexts)
        scripted = [i for i, c in enumerate(contexts) if c.turn in self.script[c.key[1]]]
        model = [i for i in range(len(contexts)) if i not in scripted]
        for rows, backend in ((scripted, self.scripted), (model, self.real)):
            if rows:
                gens = backend.generate([contexts[i] for i in rows], [limits[i] for i in rows], stop, temperature)
                for i, g in zip(rows, gens):
                    out[i] = g
        return out

    def __getattr__(self, name):
        return getattr(self.real, name)


def _rollout(policy, call_text, make_task, kv_cache: bool, temperature: float):
    script = {0: {0: call_text([100, 50, 420, 300]), 2: "<answer>A</answer>"},       # zoom, model, answer
              1: {1: call_text([10, 10, 200, 150])},                                 # model, zoom, model...
              2: {0: "<answer>B</answer>"},                                          # answers at once
              3: {}}                                                                 # the model throughout
    cfg = ProtocolConfig(image_max_pixels=112 * 112, crop_max_pixels=56 * 56, max_turns=4,
                         max_new_tokens_per_turn=60, temperature=temperature, kv_cache=kv_cache)
    torch.manual_seed(0)
    return RolloutEngine(Mixed(policy, script), None, cfg).run(
        [make_task("a"), make_task("b", 300, 600, seed=2)], group_size=4)


def _turn_ids(traj) -> list[list[int]]:
    return [traj.response_ids[r.span[0]:r.span[1]].tolist() for r in traj.turns]


def _assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        assert _turn_ids(x) == _turn_ids(y)
        assert torch.equal(x.response_ids, y.response_ids) and torch.equal(x.response_mask, y.response_mask)
        assert x.stop_reason == y.stop_reason and len(x.images) == len(y.images)
        assert torch.allclose(x.old_logprobs, y.old_logprobs, atol=1e-4)


@pytest.fixture
def reuse_spy(monkeypatch):
    """Records how many kept tokens each cached ``generate`` reused per row."""
    kept: list[list[int]] = []
    real = kv_reuse.batch_over_kept

    def spy(*args, **kwargs):
        batch = real(*args, **kwargs)
        kept.append(batch.kept)
        return batch

    monkeypatch.setattr(kv_reuse, "batch_over_kept", spy)
    return kept


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_turns_are_identical_with_and_without_the_kept_cache(family, dirs, call_text, make_task, reuse_spy):
    policy = load_policy(dirs[family])
    plain = _rollout(policy, call_text, make_task, kv_cache=False, temperature=0.0)
    assert not reuse_spy  # kv_cache=False takes the re-encoding path
    cached = _rollout(policy, call_text, make_task, kv_cache=True, temperature=0.0)
    _assert_same(plain, cached)
    # the batch is the case that matters: different turn counts and lengths, crops in observations, and the
    # cache really reused (later turns fed only their new tokens), also after an image in the kept prefix
    assert len({len(t.turns) for t in cached}) >= 3 and len({len(t.response_ids) for t in cached}) >= 3
    assert any(len(t.images) >= 2 for t in cached)
    assert sum(k for row in reuse_spy[1:] for k in row) > 0 and all(k == 0 for k in reuse_spy[0])
    image = policy.image_token_id
    longest = max(cached, key=lambda t: len(t.turns))
    assert int((longest.full_ids == image).sum()) == sum(policy.image_tokens(im) for im in longest.images)


def test_sampled_turns_are_identical_with_a_fixed_seed(dirs, call_text, make_task):
    policy = load_policy(dirs["qwen2_5_vl"])
    plain = _rollout(policy, call_text, make_task, kv_cache=False, temperature=1.0)
    cached = _rollout(policy, call_text, make_task, kv_cache=True, temperature=1.0)
    _assert_same(plain, cached)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_in_place_cache_and_grouped_attention_change_no_number(dirs, call_text, make_task, temperature):
    """Generation writes K/V in place (``InPlaceCache``) and keeps KV heads grouped under a padding mask
    (``native_gqa``); with Hugging Face's ``DynamicCache`` and repeated heads instead, every token and every
    recorded log-prob is the same, bit for bit, over the batch with kept caches, crops and ragged rows."""
    policy = load_policy(dirs["qwen2_5_vl"])
    fast = _rollout(policy, call_text, make_task, kv_cache=True, temperature=temperature)
    policy.inplace_cache = policy.grouped_attention = False
    hf = _rollout(policy, call_text, make_task, kv_cache=True, temperature=temperature)
    _assert_same(hf, fast)
    assert all(torch.equal(a.old_logprobs, b.old_logprobs) for a, b in zip(hf, fast))


def test_fast_generation_off_is_hugging_faces_own_path_with_the_same_numbers(dirs, call_text, make_task):
    """``load_policy(fast_generation=False)`` (``model.fast_generation: false``, ``mapo eval
    --no-fast-generation``) turns off all three speed-ups, and the rollout keeps every token and log-prob."""
    fast, plain = load_policy(dirs["qwen2_5_vl"]), load_policy(dirs["qwen2_5_vl"], fast_generation=False)
    assert fast.inplace_cache and fast.grouped_attention and fast.lean_decode
    assert not (plain.inplace_cache or plain.grouped_attention or plain.lean_decode)
    a, b = (_rollout(p, call_text, make_task, kv_cache=True, temperature=1.0) for p in (fast, plain))
    _assert_same(a, b)
    assert all(torch.equal(x.old_logprobs, y.old_logprobs) for x, y in zip(a, b))


def test_a_backend_that_cannot_reuse_re_encodes_and_keeps_nothing(dirs, call_text, make_task, monkeypatch,
                                                                   reuse_spy):
    from mapo.models.hf_qwen import HFQwenBackend

    policy = load_policy(dirs["qwen2_5_vl"])
    plain = _rollout(policy, call_text, make_task, kv_cache=False, temperature=0.0)
    monkeypatch.setattr(HFQwenBackend, "reuses_kv_cache", property(lambda self: False))
    fallback = _rollout(policy, call_text, make_task, kv_cache=True, temperature=0.0)
    _assert_same(plain, fallback)
    assert not reuse_spy


def test_sliding_window_layers_are_not_reused(dirs):
    policy = load_policy(dirs["qwen2_5_vl"])
    assert policy.reuses_kv_cache
    text = policy.model.config.get_text_config(decoder=True)
    text.layer_types = ["sliding_attention"] + list(text.layer_types or [])[1:]
    assert not policy.reuses_kv_cache


# -- which prefix is reusable -----------------------------------------------------------------------------

PAD = 9


def _kept(ids, images):
    n = len(ids)
    return kv_reuse.TrajectoryKV(ids=ids, keys=[], values=[], positions=torch.arange(n).expand(3, n), images=images)


def test_reusable_prefix_is_the_common_prefix_minus_at_least_one_token():
    kept = _kept([1, 2, 3, 4], [])
    assert kv_reuse.reusable_prefix(kept, [1, 2, 3, 4, 5, 6], [], PAD) == 4
    assert kv_reuse.reusable_prefix(kept, [1, 2, 7, 4, 5], [], PAD) == 2  # diverges at token 2
    assert kv_reuse.reusable_prefix(kept, [1, 2, 3, 4], [], PAD) == 3  # one token must be fed to predict from
    assert kv_reuse.reusable_prefix(None, [1, 2, 3], [], PAD) == 0


def test_reusable_prefix_never_splits_an_image_nor_reuses_a_different_one():
    a, b = Image.new("RGB", (28, 28)), Image.new("RGB", (28, 28))
    kept = _kept([1, PAD, PAD, PAD, 2, 3], [a])
    assert kv_reuse.reusable_prefix(kept, [1, PAD, PAD, PAD, 2, 3, 4], [a], PAD) == 6
    # the kept state ends inside an image (or diverges there): back off to the image's first token
    assert kv_reuse.reusable_prefix(_kept([1, PAD, PAD], [a]), [1, PAD, PAD, PAD, 2], [a], PAD) == 1
    # the same tokens but another image object: its features differ, so it is encoded again
    assert kv_reuse.reusable_prefix(kept, [1, PAD, PAD, PAD, 2, 3, 4], [b], PAD) == 1
    assert kv_reuse.next_position(kept, 4) == 4 and kv_reuse.next_position(kept, 0) == 0


def test_reusable_prefix_finds_the_first_difference_anywhere():
    """The first differing token, found by halving with list comparisons, is where an element-wise scan finds it."""
    import random

    rng = random.Random(0)
    for _ in range(3000):
        kept = [rng.randrange(3) for _ in range(rng.randrange(1, 40))]
        ids = kept[:rng.randrange(0, len(kept) + 1)] + [rng.randrange(3) for _ in range(rng.randrange(1, 40))]
        n = min(len(kept), len(ids) - 1)
        want = next((j for j in range(n) if kept[j] != ids[j]), n) if n > 0 else 0
        state = kv_reuse.TrajectoryKV(ids=kept, keys=[], values=[], positions=torch.zeros(3, len(kept)), images=[])
        assert kv_reuse.reusable_prefix(state, ids, [], image_token_id=999) == max(want, 0)
