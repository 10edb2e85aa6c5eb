"""Text-only warm start of a tiny model's language model, before any image is shown.

A real VLM starts from a pretrained LM: it can already repeat what the question names. A tiny model trained
from scratch cannot, and multimodal SFT alone does not teach it within a CPU budget: after 300 steps the tiny
models still guessed the colour and shape of the object they were asked about (uniform over the world's
colours, ~2.3 nats a token) in their thoughts and zoom labels. A few hundred steps on the *text* of the
dialogues (question -> expert turns, no images, short sequences) teach that copying; the multimodal SFT that
follows then only has to learn what the image adds (where to zoom, what the crop shows).

Each example is ``(user_text, assistant_turns)``. It is laid out in the chat format the policy will see, minus
the system prompt and the images: the user turn, then the assistant turns separated by the protocol's text-only
observation turns. The loss is on the assistant turns only.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

Example = tuple[str, Sequence[str]]


def dialogue_ids(tokenizer, user: str, turns: Sequence[str]) -> tuple[list[int], list[int]]:
    """Token ids of one text-only dialogue and a 0/1 loss mask (1 on the assistant's own tokens)."""
    from mapo.agent.protocol import observation_text

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    segments: list[tuple[str, int]] = [(f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n", 0)]
    for k, turn in enumerate(turns):
        if k:
            segments.append((observation_text(0), 0))
        segments.append((turn, 1))
    ids: list[int] = []
    mask: list[int] = []
    for text, learn in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        mask += [learn] * len(piece)
    ids.append(eos)  # the episode ends: <|im_end|> after the answer is the model's to write
    mask.append(1)
    return ids, mask


def warm_up_language_model(model_dir: str | Path, examples: Sequence[Example], *, steps: int = 300,
                           batch_size: int = 32, lr: float = 3e-3, warmup_steps: int = 10, seed: int = 0,
                           max_tokens: int = 512, progress: bool = True) -> dict:
    """Train the checkpoint in ``model_dir`` for ``steps`` AdamW steps on text-only ``examples`` and write it
    back in place (weights replaced atomically). Returns a summary (first/last loss, seconds), which is also
    recorded under ``"warmup"`` in ``mapo_model.json``."""
    import time

    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    if steps < 1:
        raise ValueError(f"steps={steps}: a warm-up needs at least one step (skip the call for none)")
    if not examples:
        raise ValueError("no examples to warm the language model up on; make the world first (mapo world make)")
    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    encoded = [dialogue_ids(tokenizer, user, turns) for user, turns in examples]
    encoded = [(ids[:max_tokens], mask[:max_tokens]) for ids, mask in encoded]
    pad = tokenizer.pad_token_id
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
    model.train()
    start = time.time()
    losses: list[float] = []
    order: list[int] = []
    bar = tqdm(range(steps), desc="LM warm-up", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        if len(order) < batch_size:
            more = list(range(len(encoded)))
            rng.shuffle(more)
            order += more
        batch, order = [encoded[i] for i in order[:batch_size]], order[batch_size:]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([[t if m else -100 for t, m in zip(ids, mask)] + [-100] * (width - len(ids))
                               for ids, mask in batch])
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(float(loss.detach())):
            scheduler.step()
            continue  # a non-finite batch is skipped, not applied
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    summary = {"steps": steps, "batch_size": batch_size, "lr": lr, "examples": len(encoded),
               "first_loss": round(losses[0], 4) if losses else None,
               "last_loss": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4) if losses else None,
               "seconds": round(time.time() - start, 1)}
    _save_weights(model, model_dir)
    meta_path = model_dir / "mapo_model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta["warmup"] = summary
    meta_path.write_text(json.dumps(meta, indent=2))
    return summary


def _save_weights(model, model_dir: Path) -> None:
    """Write the weights next to the old ones, then swap them in: a kill mid-write leaves the old checkpoint."""
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".warmup-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in os.listdir(tmp):
            if name.endswith((".safetensors", ".safetensors.index.json")):
                os.replace(Path(tmp) / name, model_dir / name)
