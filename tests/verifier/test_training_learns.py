"""A short, tiny training run must actually learn: on held-out world crops the trained verifier tells true
captions from other objects' captions, and crops that contain the object from crops that miss it, far better
than the same network untrained (a broken loss, mask or data pipeline fails this; ~15 CPU-seconds)."""

from __future__ import annotations

import random

import torch

from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import generate_tasks
from mapo.verifier.config import VerifierConfig
from mapo.verifier.embedded import EmbeddedVerifier
from mapo.verifier.evaluate import pair_metrics
from mapo.verifier.lit import LiTConfig, LiTModel
from mapo.verifier.pairs import make_pairs
from mapo.verifier.train import TrainConfig, train_lit

# the glimpse reader included (image 64 px, conv stages on 32 px, 16 px glimpses); one template keeps the
# number of distinct captions MiniLM must encode small
TINY = {"steps": 60, "batch_size": 32, "image_size": 64, "global_size": 32, "glimpse_size": 16, "embed_dim": 32,
        "templates": [0], "stages": [(16, 3, 2), (32, 3, 2), (48, 3, 2)], "objects_per_task": 8, "warmup_steps": 5,
        "lr": 5e-3, "threads": 1, "reader_warmup_steps": 0}


def test_short_training_run_learns(tmp_path, monkeypatch):
    monkeypatch.setenv("MAPO_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    tasks = generate_tasks(WorldConfig(seed=0), "val", 6)
    pairs = make_pairs(tasks, [0], random.Random(1), per_task=8, subset=("colour", "shape"))
    cfg = VerifierConfig(backend="embedded", cache_size=0)
    untrained_model = LiTModel(LiTConfig(
        image_size=TINY["image_size"], global_size=TINY["global_size"], glimpse_size=TINY["glimpse_size"],
        embed_dim=TINY["embed_dim"], stages=[tuple(s) for s in TINY["stages"]])).eval()
    untrained = pair_metrics(EmbeddedVerifier(cfg, model=untrained_model), pairs)

    model, summary = train_lit(TrainConfig(**TINY), progress=False)
    trained = pair_metrics(EmbeddedVerifier(cfg, model=model), pairs)

    assert summary["steps_done"] == TINY["steps"]
    assert trained["auc_vs_other_object"] > 0.85 and trained["auc_hit_vs_miss"] > 0.85
    assert trained["auc_vs_other_object"] > untrained["auc_vs_other_object"] + 0.2
    assert trained["mean_match"] > trained["mean_miss"] + 0.1


def test_glimpse_finds_the_object_nearest_the_centre():
    from PIL import Image, ImageDraw

    from mapo.verifier.lit import images_to_tensor

    image = Image.new("RGB", (100, 100), (240, 240, 236))
    draw = ImageDraw.Draw(image)
    draw.rectangle([40, 45, 60, 65], fill=(215, 40, 40))  # the target, near the centre
    draw.rectangle([0, 0, 12, 12], fill=(40, 80, 215))  # a sliver of clutter on the border
    model = LiTModel(LiTConfig(image_size=100, glimpse_size=16)).eval()
    cx, cy, half, found = model.vision.glimpse_boxes(images_to_tensor([image], 100)).tolist()[0]
    assert found == 1.0
    assert abs(cx - 0.0) < 0.1 and abs(cy - 0.1) < 0.1 and 0.2 < half < 0.35


def test_reader_warm_up_learns_from_the_glimpses():
    """The reader-only warm-up (before the contrastive phase) learns the glimpsed object's colour within a few
    dozen steps (chance: 1/8), and leaves the model's own parameters other than the reader untouched."""
    from mapo.verifier.train import pair_batches, warm_up_reader

    torch.manual_seed(0)
    cfg = TrainConfig(**{**TINY, "reader_warmup_steps": 40, "reader_lr": 3e-3})
    model = LiTModel(LiTConfig(image_size=cfg.image_size, global_size=cfg.global_size, embed_dim=cfg.embed_dim,
                               glimpse_size=cfg.glimpse_size, glimpse_contrast=cfg.glimpse_contrast,
                               stages=[tuple(s) for s in cfg.stages])).train()
    head_before = model.vision.head[0].weight.clone()
    colour, _shape, _digit = warm_up_reader(model, pair_batches(cfg, random.Random(0)), cfg, [1.0, 1.0, 2.0],
                                            progress=False)
    assert colour > 0.5
    torch.testing.assert_close(model.vision.head[0].weight, head_before)


def test_glimpse_contrast_adds_three_reader_channels_and_old_configs_keep_three():
    old = LiTModel(LiTConfig(image_size=64, glimpse_size=16))  # configs saved before the field existed
    new = LiTModel(LiTConfig(image_size=64, glimpse_size=16, glimpse_contrast=5))
    assert old.vision.reader[0].in_channels == 3 and new.vision.reader[0].in_channels == 6
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    assert new.eval().image_embeddings(pixels).shape == old.eval().image_embeddings(pixels).shape
