"""The verifier's quality report on held-out world tasks: what MAPO's semantic signal rests on.

All pairs come from the world's ``val`` split (tasks the verifier never trained on), scored through the
public ``Verifier.score`` interface. Reported:
- match vs mismatch AUC: true captions vs hard negatives (one attribute changed) and captions of other objects,
  on the training templates and on templates never used in training;
- hit vs miss AUC: a caption scored on a crop that contains its object vs a same-size crop that misses it;
- retrieval: top-1 accuracy crop -> caption and caption -> crop among ``retrieval_group`` distinct objects;
- degenerate labels ("object", "image", ...): their mean score, and the share of true captions they beat.
"""

from __future__ import annotations

import random

import torch
from pydantic import BaseModel, ConfigDict, Field

from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import generate_tasks
from mapo.verifier.base import Verifier
from mapo.verifier.metrics import roc_auc, top1_accuracy
from mapo.verifier.pairs import KEYS, PairConfig, PairSet, caption_matches, make_pairs

DEGENERATE_LABELS = ("object", "image", "a shape", "something", "the target", "a small object")


class EvalConfig(BaseModel):
    """Size and seeds of the held-out evaluation."""

    model_config = ConfigDict(extra="forbid")

    n_tasks: int = Field(40, ge=1, description="World val-split tasks to cut pairs from.")
    objects_per_task: int = Field(8, ge=1, description="Objects per task turned into pairs.")
    retrieval_group: int = Field(50, ge=2, description="Candidates per retrieval query (distinct objects).")
    seed: int = Field(1, description="Seeds crop placement and caption sampling.")
    world_seed: int = Field(0, description="Seed of the world (same world as training, unseen split).")
    seen_templates: list[int] = Field(default_factory=lambda: [0, 1, 2, 3],
                                      description="Templates used in training.")
    unseen_templates: list[int] = Field(default_factory=lambda: [4, 5],
                                        description="Templates never used in training.")
    margin_min: float = Field(1.2, description="Tightest hit crop, as a multiple of the object side.")
    margin_max: float = Field(5.0, description="Loosest hit crop (the expert's zooms are 2.5-5x the object).")


def _mismatched_captions(pairs: PairSet) -> tuple[list[str], list[int]]:
    """For each hit crop, the caption of another pair that is not true of it (index list of the crops)."""
    n = len(pairs)
    ok = caption_matches(pairs.caption_codes, pairs.caption_named, pairs.object_codes)  # [T, O]
    texts, crops = [], []
    for j in range(n):
        for shift in range(1, n):
            t = (j + shift * 7) % n
            if not ok[t, j]:
                texts.append(pairs.captions[t])
                crops.append(j)
                break
    return texts, crops


def pair_metrics(verifier: Verifier, pairs: PairSet) -> dict[str, float]:
    """AUCs and mean scores on one pair set (see the module doc)."""
    positive = verifier.score(pairs.captions, pairs.hit)
    hard = verifier.score(pairs.negatives, pairs.hit)
    other_texts, other_crops = _mismatched_captions(pairs)
    other = verifier.score(other_texts, [pairs.hit[j] for j in other_crops])
    missed = verifier.score(pairs.captions, pairs.miss)
    changed = (pairs.negative_codes != pairs.caption_codes).float().argmax(-1)  # [N] which attribute differs
    per_attribute = {f"auc_vs_hard_negative_{key}": roc_auc(positive, hard[changed == k])
                     for k, key in enumerate(KEYS) if bool((changed == k).any())}
    return {
        "n_pairs": len(pairs),
        "auc_match_vs_mismatch": roc_auc(positive, torch.cat([hard, other])),
        "auc_vs_hard_negative": roc_auc(positive, hard),
        **per_attribute,
        "auc_vs_other_object": roc_auc(positive, other),
        "auc_hit_vs_miss": roc_auc(positive, missed),
        "mean_match": positive.mean().item(),
        "mean_hard_negative": hard.mean().item(),
        "mean_other_object": other.mean().item(),
        "mean_miss": missed.mean().item(),
    }


def retrieval_metrics(verifier: Verifier, pairs: PairSet, group: int) -> dict[str, float]:
    """Top-1 accuracy in groups of ``group`` pairs of distinct objects (full captions: one true pair each)."""
    seen, keep = set(), []
    for i, codes in enumerate(pairs.object_codes.tolist()):
        if tuple(codes) not in seen:
            seen.add(tuple(codes))
            keep.append(i)
    i2t, t2i, n = 0.0, 0.0, 0
    for start in range(0, len(keep) - group + 1, group):
        idx = keep[start:start + group]
        sim = verifier.similarity_matrix([pairs.captions[i] for i in idx], [pairs.hit[i] for i in idx])
        t2i += top1_accuracy(sim) * group
        i2t += top1_accuracy(sim.T) * group
        n += group
    if n == 0:
        raise ValueError(f"retrieval needs at least {group} distinct objects; raise n_tasks or lower "
                         "retrieval_group")
    return {"crop_to_caption_top1": i2t / n, "caption_to_crop_top1": t2i / n, "group": group, "queries": n}


def degenerate_label_scores(verifier: Verifier, pairs: PairSet) -> dict[str, dict[str, float]]:
    """Mean raw score of each degenerate label over the hit crops, and the share of true captions it beats."""
    positive = verifier.score(pairs.captions, pairs.hit)
    out = {}
    for label in DEGENERATE_LABELS:
        scores = verifier.score([label] * len(pairs), pairs.hit)
        out[label] = {"mean": scores.mean().item(),
                      "beats_true_caption_share": (scores[:, None] > positive[None, :]).float().mean().item()}
    return out


def quality_report(verifier: Verifier, cfg: EvalConfig | None = None) -> dict:
    """The full report (a JSON-serialisable dict) on the world's val split."""
    cfg = cfg or EvalConfig()
    tasks = generate_tasks(WorldConfig(seed=cfg.world_seed), "val", cfg.n_tasks)
    rng = random.Random(cfg.seed)
    crops = PairConfig(margin_min=cfg.margin_min, margin_max=cfg.margin_max)
    seen = make_pairs(tasks, cfg.seen_templates, rng, crops, per_task=cfg.objects_per_task)
    unseen = make_pairs(tasks, cfg.unseen_templates, rng, crops, per_task=cfg.objects_per_task)
    full = make_pairs(tasks, cfg.seen_templates + cfg.unseen_templates, rng, crops, per_task=None, subset=KEYS)
    return {
        "seen_templates": pair_metrics(verifier, seen),
        "unseen_templates": pair_metrics(verifier, unseen),
        "retrieval": retrieval_metrics(verifier, full, cfg.retrieval_group),
        "degenerate_labels": degenerate_label_scores(verifier, seen),
        "config": cfg.model_dump(),
    }
