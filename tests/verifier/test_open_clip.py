"""open_clip backend: a tiny open_clip model built from a config written here, its weights saved to a local file,
loaded through ``load_verifier(backend="open_clip")`` and scored on crops. Nothing comes from a hub.

Needs open-clip-torch, hence a torchvision whose compiled ops load beside the installed torch. The CPU torch
2.13.0 build of the main .venv has none (PyPI's torchvision wheels are CUDA builds), so there these tests are
skipped with that reason; ``make test-openclip`` builds .venv-openclip (torch 2.14.1 + torchvision 0.29.1 from
PyPI, a matching pair that runs on the CPU) and runs this file there, and .ci/run does so on every submission.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from mapo.verifier import LabelPenalties, load_verifier
from mapo.verifier.hf_clip import VerifierLoadError

TEXTS = ["a small red circle", "the blue square with digit 7", "green triangle", "object", "image",
         "a red square with letter k"]
NO_PENALTY = LabelPenalties(empty_score=None, max_words=None)
ARCH = "mapo-test-tiny-vit"
# A ViT-style CLIP small enough to build in a second on the CPU; the text tower keeps open_clip's CLIP BPE
# vocabulary (the tokenizer the package ships), with a 16-token context.
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}

OPEN_CLIP_SKIP = (
    "open_clip cannot be imported here ({why}). `make test-openclip` runs these tests in .venv-openclip (torch "
    "2.14.1 + torchvision 0.29.1), as CI does: open_clip needs torchvision, and PyPI's torchvision wheels are CUDA "
    "builds that fail beside the CPU torch 2.13.0 of .venv ('operator torchvision::nms does not exist')")


try:
    import open_clip
except (ImportError, RuntimeError) as exc:  # RuntimeError: a torchvision that does not match torch
    pytest.skip(OPEN_CLIP_SKIP.format(why=f"{type(exc).__name__}: {exc}"), allow_module_level=True)


@pytest.fixture(scope="module")
def tiny_model_and_checkpoint(tmp_path_factory):
    """(the randomly initialised model, the safetensors file its weights were saved to)."""
    out = tmp_path_factory.mktemp("tiny_open_clip")
    config = out / f"{ARCH}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)  # open_clip's own registry of architecture configs
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH).eval()
    checkpoint = out / "tiny_open_clip.safetensors"
    save_file(model.state_dict(), checkpoint)
    return model, checkpoint


def _load(checkpoint, **fields):
    torch.manual_seed(1)  # a model that ignored the checkpoint would be initialised differently from the saved one
    return load_verifier(backend="open_clip", open_clip_arch=ARCH, path=checkpoint, penalties=NO_PENALTY, **fields)


def test_scores_are_the_cosines_of_the_saved_models_embeddings(tiny_model_and_checkpoint, crops):
    model, checkpoint = tiny_model_and_checkpoint
    v = _load(checkpoint)
    scores = v.score(TEXTS, crops)
    assert scores.shape == (len(TEXTS),) and scores.dtype == torch.float32
    assert torch.all(scores.abs() <= 1.0)
    # the reference: the saved model's own embeddings, through open_clip's tokenizer and eval transform
    _, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    tokenizer = open_clip.get_tokenizer(ARCH)
    with torch.no_grad():
        t = torch.nn.functional.normalize(model.encode_text(tokenizer(TEXTS)), dim=-1)
        i = torch.nn.functional.normalize(model.encode_image(torch.stack([preprocess(c) for c in crops])), dim=-1)
    torch.testing.assert_close(scores, (t * i).sum(-1), atol=1e-5, rtol=1e-4)
    assert scores.std() > 1e-3  # different pairs, different scores: not a constant


def test_batched_equals_unbatched(tiny_model_and_checkpoint, crops):
    _, checkpoint = tiny_model_and_checkpoint
    together = _load(checkpoint, batch_size=64, cache_size=0).score(TEXTS, crops)
    one_by_one = _load(checkpoint, batch_size=1, cache_size=0)
    single = torch.cat([one_by_one.score([t], [im]) for t, im in zip(TEXTS, crops)])
    torch.testing.assert_close(together, single, atol=1e-5, rtol=1e-4)


def test_texts_are_truncated_to_the_token_limit(tiny_model_and_checkpoint, crops):
    _, checkpoint = tiny_model_and_checkpoint
    v = _load(checkpoint, cache_size=0)
    assert v.max_text_tokens == TINY_CONFIG["text_cfg"]["context_length"]
    long_text = " ".join(["red"] * 200)  # far beyond the 16-token context
    assert torch.isfinite(v.score([long_text], crops[:1])).all()
    short = _load(checkpoint, cache_size=0, max_text_tokens=4)
    assert short.max_text_tokens == 4
    # with a 4-token limit (start, two words, end) only the first two words count
    a = short.score(["a small red circle with digit 7"], crops[:1])
    b = short.score(["a small blue square with letter k"], crops[:1])
    c = short.score(["green triangle"], crops[:1])
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(VerifierLoadError, match="no checkpoint file at .*missing.pt"):
        load_verifier(backend="open_clip", open_clip_arch="ViT-B-32", path=tmp_path / "missing.pt")


def test_missing_architecture_is_refused_with_known_names(tiny_model_and_checkpoint):
    _, checkpoint = tiny_model_and_checkpoint
    with pytest.raises(ValueError, match="needs `open_clip_arch`.*ViT"):
        load_verifier(backend="open_clip", path=checkpoint)
