"""Train the embedded LiT verifier on crops of the embedded world (CleanRL-style: read it top to bottom).

Every step draws fresh world tasks, cuts (hit crop, miss crop, caption, hard-negative caption) pairs from
them, and updates only the vision tower and the text projection; MiniLM embeddings of captions are computed
once per distinct caption (the text tower is frozen) and kept in a bank.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mapo.data.world.config import WorldConfig
from mapo.data.world.generate import make_task
from mapo.verifier.embedded import save_lit
from mapo.verifier.lit import LiTConfig, LiTModel
from mapo.verifier.loss import attribute_accuracy, attribute_probe_loss, lit_loss
from mapo.verifier.pairs import PairConfig, caption_matches, crops_to_uint8, make_pairs
from mapo.verifier.text_tower import MiniLMTextEncoder, shared_text_encoder


class TrainConfig(BaseModel):
    """Hyper-parameters of ``mapo verifier train`` (defaults: ~2-3 minutes on 2 CPU cores)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(400, ge=1, description="Optimizer steps of the contrastive phase.")
    batch_size: int = Field(64, ge=2, description="(caption, hit crop) pairs per step.")
    miss_fraction: float = Field(0.25, ge=0, le=1, description="Share of pairs that also get a miss crop.")
    objects_per_task: int = Field(8, ge=1, description="Objects used per rendered world task (diversity).")
    lr: float = Field(2e-3, gt=0, description="Peak AdamW learning rate (linear warm-up, cosine decay).")
    warmup_steps: int = Field(20, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    seed: int = Field(0, description="Seeds the pair sampler and the initial weights.")
    world_seed: int = Field(0, description="Seed of the world whose train split supplies the crops.")
    templates: list[int] = Field(default_factory=lambda: [0, 1, 2, 3],
                                 description="Caption templates used in training (the rest stay unseen).")
    margin_min: float = Field(1.2, description="Tightest hit crop, as a multiple of the object side.")
    margin_max: float = Field(5.0, description="Loosest hit crop, as a multiple of the object side (the expert's "
                                                "zooms are 2.5-5x).")
    image_size: int = Field(128, ge=16, description="Side of the square the crop is letter-boxed to (pixels).")
    global_size: int | None = Field(64, description="Side the conv stages see (avg-pooled from image_size).")
    glimpse_size: int = Field(32, ge=0, description="Side of the object-aligned glimpse (0: no glimpse reader).")
    embed_dim: int = Field(256, ge=8, description="Dimension of the shared embedding space.")
    stages: list[tuple[int, int, int]] | None = Field(
        None, description="Vision tower conv stages (channels, kernel, stride); None: LiTConfig's default.")
    max_seconds: float | None = Field(None, description="Stop early after this many seconds (None: run all).")
    threads: int | None = Field(None, description="torch CPU threads (None: torch's default).")
    glimpse_contrast: int = Field(5, ge=0, description="Local-contrast window of the glimpse reader's extra "
                                                      "channels (0: plain RGB glimpses).")
    reader_lr: float | None = Field(
        1e-3, gt=0, description="Peak lr of the glimpse reader (same schedule as the rest); None: lr "
                                "(src/mapo/verifier/README.md: why it is lower).")
    reader_warmup_steps: int = Field(
        250, ge=0, description="Steps before the contrastive phase that train only the glimpse reader, to classify "
                             "the glimpsed object's colour/shape/digit (cheap: no conv stages, no captions).")
    attribute_weight: float = Field(1.0, ge=0, description="Weight of the colour/shape/digit probe loss.")
    digit_weight: float = Field(2.0, ge=0, description="Extra factor on the digit's share of the probe loss.")
    text_cache: bool = Field(True, description="Keep caption embeddings in $MAPO_CACHE_DIR across runs.")


#: Vague labels that are true of any crop; trained to score below a specific true caption (they never appear
#: in the quality report's degenerate-label list, which uses other wordings).
GENERIC_LABELS = ("an object", "a thing", "a picture", "shape", "it", "the item", "something here", "a photo")


class TextBank:
    """Frozen MiniLM embeddings of every caption seen so far: each distinct text is encoded once, and with a
    ``path`` once per machine (the world's caption space is finite, so later runs encode almost nothing)."""

    def __init__(self, encoder: MiniLMTextEncoder, path: Path | None = None) -> None:
        self.encoder = encoder
        self.path = path
        self.index: dict[str, int] = {}
        self.vectors = torch.empty(0, encoder.model.config.hidden_size)
        self._saved = 0
        if path is not None and path.with_suffix(".json").is_file() and path.is_file():
            texts = json.loads(path.with_suffix(".json").read_text())
            vectors = load_file(str(path))["vectors"]
            if len(texts) == len(vectors) and vectors.shape[1] == self.vectors.shape[1]:
                self.index = {t: i for i, t in enumerate(texts)}
                self.vectors = vectors
                self._saved = len(texts)

    def lookup(self, texts: list[str]) -> torch.Tensor:
        """[N, 384] embeddings of ``texts``, encoding only the ones not in the bank yet."""
        new = [t for t in dict.fromkeys(texts) if t not in self.index]
        if new:
            self.vectors = torch.cat([self.vectors, self.encoder.encode(new)])
            for t in new:
                self.index[t] = len(self.index)
        return self.vectors[[self.index[t] for t in texts]]

    def save(self) -> None:
        """Write the bank to ``path`` (+ ``.json`` with the texts) when it grew; atomic per file."""
        if self.path is None or len(self.index) == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        save_file({"vectors": self.vectors.contiguous()}, str(tmp))
        tmp.replace(self.path)
        tmp_json = self.path.with_suffix(".json.tmp")
        tmp_json.write_text(json.dumps(list(self.index)))
        tmp_json.replace(self.path.with_suffix(".json"))
        self._saved = len(self.index)


def default_text_bank_path() -> Path:
    """``$MAPO_CACHE_DIR`` (default ``~/.cache/mapo``) / verifier_text_bank.safetensors."""
    root = Path(os.environ.get("MAPO_CACHE_DIR", Path.home() / ".cache" / "mapo"))
    return root / "verifier_text_bank.safetensors"


def pair_batches(cfg: TrainConfig, rng: random.Random) -> Iterator[dict]:
    """Endless batches from fresh tasks of the world's train split (a task index is never reused)."""
    world = WorldConfig(seed=cfg.world_seed)
    pair_cfg = PairConfig(margin_min=cfg.margin_min, margin_max=cfg.margin_max)
    n_miss = round(cfg.batch_size * cfg.miss_fraction)
    task_index = 0
    while True:
        tasks = []
        while len(tasks) * cfg.objects_per_task < cfg.batch_size:
            tasks.append(make_task(world, "train", task_index))
            task_index += 1
        pairs = make_pairs(tasks, cfg.templates, rng, pair_cfg, per_task=cfg.objects_per_task)
        keep = rng.sample(range(len(pairs)), cfg.batch_size)
        yield {
            "hit": crops_to_uint8([pairs.hit[i] for i in keep], cfg.image_size),
            "miss": crops_to_uint8([pairs.miss[i] for i in keep[:n_miss]], cfg.image_size),
            "captions": [pairs.captions[i] for i in keep],
            "negatives": [pairs.negatives[i] for i in keep],
            "object_codes": pairs.object_codes[keep],
            "caption_codes": pairs.caption_codes[keep],
            "caption_named": pairs.caption_named[keep],
            "negative_codes": pairs.negative_codes[keep],
        }


def _to_pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(127.5).sub_(1.0)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr``, then cosine decay to 5% of it."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def warm_up_reader(model: LiTModel, batches: Iterator[dict], cfg: TrainConfig, weights: list[float],
                   progress: bool = True) -> list[float]:
    """Train the glimpse reader alone for ``cfg.reader_warmup_steps`` steps: a throw-away linear head on its
    features classifies the glimpsed object's colour, shape and digit (the world knows them). The contrastive
    loss alone picks up the digit too late (probe accuracy ~0.4 after 500 steps); a reader that already reads
    it hands the digit to the contrastive phase from its first step. Returns the last steps' accuracies."""
    vision, classes = model.vision, model.cfg.attribute_classes
    head = torch.nn.Linear(model.cfg.glimpse_dim, sum(classes))
    params = list(vision.reader.parameters()) + list(head.parameters())
    peak = cfg.reader_lr or cfg.lr
    optimizer = torch.optim.AdamW(params, lr=peak, weight_decay=cfg.weight_decay)
    accuracy: list[torch.Tensor] = []
    bar = tqdm(range(cfg.reader_warmup_steps), desc="glimpse reader", unit="step", disable=not progress)
    for step in bar:
        batch = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = peak * min(1.0, (step + 1) / 10)
        logits = head(vision.read(vision.glimpse(_to_pixels(batch["hit"]))))
        loss = attribute_probe_loss(logits, batch["object_codes"], classes, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy.append(attribute_accuracy(logits.detach(), batch["object_codes"], classes))
        bar.set_postfix(loss=f"{loss.item():.3f}", digit=f"{torch.stack(accuracy[-20:])[:, -1].mean():.2f}")
    return torch.stack(accuracy[-50:]).mean(0).tolist()


def train_lit(cfg: TrainConfig, progress: bool = True) -> tuple[LiTModel, dict]:
    """Train a fresh ``LiTModel``; returns it (in eval mode) and a summary of the run."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    arch = {"stages": [tuple(s) for s in cfg.stages]} if cfg.stages else {}
    model = LiTModel(LiTConfig(image_size=cfg.image_size, embed_dim=cfg.embed_dim, global_size=cfg.global_size,
                               glimpse_size=cfg.glimpse_size, glimpse_contrast=cfg.glimpse_contrast, **arch))
    bank = TextBank(shared_text_encoder("cpu"), default_text_bank_path() if cfg.text_cache else None)
    reader = list(model.vision.reader.parameters()) if cfg.glimpse_size else []
    reader_ids = {id(p) for p in reader}
    groups = [{"params": [p for p in model.parameters() if id(p) not in reader_ids], "scale": 1.0}]
    if reader:
        groups.append({"params": reader, "scale": (cfg.reader_lr or cfg.lr) / cfg.lr})
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    classes = model.cfg.attribute_classes
    weights = [1.0] * (len(classes) - 1) + [cfg.digit_weight]
    accuracy: list[torch.Tensor] = []
    batches = pair_batches(cfg, rng)
    model.train()
    warm = warm_up_reader(model, batches, cfg, weights, progress) if cfg.glimpse_size and cfg.reader_warmup_steps \
        else None
    bar = tqdm(range(cfg.steps), desc="verifier", unit="step", disable=not progress)
    history: list[float] = []
    model.train()
    for step in bar:
        batch = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg) * group["scale"]
        text = model.text_embeddings(bank.lookup(batch["captions"]))
        negative_text = model.text_embeddings(bank.lookup(batch["negatives"]))
        n_hit = batch["hit"].shape[0]
        images, pooled = model.image_embeddings(_to_pixels(torch.cat([batch["hit"], batch["miss"]])),
                                                with_pooled=True)
        generic_text = model.text_embeddings(bank.lookup(list(GENERIC_LABELS)))
        parts = lit_loss(
            text, negative_text, images[:n_hit], images[n_hit:],
            match=caption_matches(batch["caption_codes"], batch["caption_named"], batch["object_codes"]),
            negative_match=caption_matches(batch["negative_codes"], batch["caption_named"], batch["object_codes"]),
            inv_temperature=model.log_inv_temperature.exp().clamp(max=100.0),
            sigmoid_scale=model.sigmoid_scale, sigmoid_bias=model.sigmoid_bias, generic_text=generic_text)
        attribute_logits = model.attribute_head(pooled[:n_hit])
        attribute_loss = attribute_probe_loss(attribute_logits, batch["object_codes"], classes, weights)
        accuracy.append(attribute_accuracy(attribute_logits.detach(), batch["object_codes"], classes))
        optimizer.zero_grad(set_to_none=True)
        (parts["loss"] + cfg.attribute_weight * attribute_loss).backward()
        optimizer.step()
        history.append(parts["loss"].item())
        bar.set_postfix(loss=f"{history[-1]:.3f}", digit=f"{torch.stack(accuracy[-20:])[:, -1].mean():.2f}",
                        captions=len(bank.index))
        if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
            break
    model.eval()
    bank.save()
    summary = {
        "steps_done": len(history),
        "seconds": round(time.perf_counter() - start, 1),
        # CPU seconds over all threads: with a busy shared machine, cpu_seconds / threads estimates idle wall time
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "final_loss": round(sum(history[-20:]) / len(history[-20:]), 4),
        **({"reader_warmup_accuracy": dict(zip(("colour", "shape", "digit"), [round(a, 3) for a in warm]))}
           if warm else {}),
        "distinct_captions": len(bank.index),
        # the training-only probe on the last 50 training batches (fresh tasks, before each update)
        "probe_accuracy": dict(zip(("colour", "shape", "digit"),
                                   [round(a, 3) for a in torch.stack(accuracy[-50:]).mean(0).tolist()])),
        "config": cfg.model_dump(),
    }
    return model, summary


def train_and_save(cfg: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train and write ``model.safetensors`` + ``verifier_config.json`` to ``out_dir``; returns the summary."""
    model, summary = train_lit(cfg, progress=progress)
    save_lit(model, out_dir, metadata=summary)
    return summary
