"""HF CLIP / SigLIP from a local directory: loading, shapes, truncation, batching, clear errors."""

from __future__ import annotations

import pytest
import torch

from mapo.verifier import LabelPenalties, VerifierConfig, load_verifier
from mapo.verifier.hf_clip import VerifierLoadError

TEXTS = ["a small red circle", "the blue square with digit 7", "green triangle", "object", "image",
         "a red square with letter k"]
NO_PENALTY = LabelPenalties(empty_score=None, max_words=None)


@pytest.fixture(params=["hf_clip", "hf_siglip"])
def backend_and_dir(request, tiny_clip_dir, tiny_siglip_dir):
    return request.param, tiny_clip_dir if request.param == "hf_clip" else tiny_siglip_dir


def test_loads_from_local_dir_and_scores_cosines(backend_and_dir, crops):
    backend, path = backend_and_dir
    v = load_verifier(VerifierConfig(backend=backend, path=path, penalties=NO_PENALTY))
    scores = v.score(TEXTS, crops)
    assert scores.shape == (len(TEXTS),) and scores.dtype == torch.float32
    assert torch.all(scores.abs() <= 1.0)
    # the score is the cosine of the backend's own embeddings
    t = v.embed_texts(TEXTS)
    i = v.embed_images(crops)
    torch.testing.assert_close(scores, (t * i).sum(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5, rtol=0)


def test_batched_equals_unbatched(backend_and_dir, crops):
    backend, path = backend_and_dir
    batched = load_verifier(backend=backend, path=path, batch_size=64, cache_size=0, penalties=NO_PENALTY)
    one_by_one = load_verifier(backend=backend, path=path, batch_size=1, cache_size=0, penalties=NO_PENALTY)
    together = batched.score(TEXTS, crops)
    single = torch.cat([one_by_one.score([t], [im]) for t, im in zip(TEXTS, crops)])
    torch.testing.assert_close(together, single, atol=1e-5, rtol=1e-4)


def test_texts_are_truncated_to_the_encoder_limit(backend_and_dir, crops):
    backend, path = backend_and_dir
    v = load_verifier(backend=backend, path=path, cache_size=0, penalties=NO_PENALTY)
    long_text = " ".join(["red"] * 200)  # far beyond max_position_embeddings = 16
    assert torch.isfinite(v.score([long_text], crops[:1])).all()
    short = load_verifier(backend=backend, path=path, cache_size=0, max_text_tokens=4, penalties=NO_PENALTY)
    assert short.max_text_tokens == 4
    # with a 4-token limit only the first words count: a different tail no longer changes the score
    a = short.score(["a small red circle with digit 7"], crops[:1])
    b = short.score(["a small blue square with letter k"], crops[:1])
    torch.testing.assert_close(a, b)


def test_missing_directory_names_the_path(tmp_path):
    missing = tmp_path / "no_such_clip"
    with pytest.raises(VerifierLoadError, match="no_such_clip"):
        load_verifier(backend="hf_clip", path=missing)


def test_wrong_family_is_refused(tiny_clip_dir):
    with pytest.raises(VerifierLoadError, match="hf_clip"):
        load_verifier(backend="hf_siglip", path=tiny_clip_dir)


def test_mismatched_lengths_are_refused(tiny_clip_dir, crops):
    v = load_verifier(backend="hf_clip", path=tiny_clip_dir)
    with pytest.raises(ValueError, match="2 texts and 1 images"):
        v.score(["a", "b"], crops[:1])

