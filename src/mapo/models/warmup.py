"""Warm starts of a tiny model before SFT: its language model on text alone, then grounding on images.

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
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForImageTextToText, AutoTokenizer

from mapo.agent.backend import Context
from mapo.agent.parser import parse_turn
from mapo.agent.protocol import observation_text
from mapo.data.images import fit_to_budget
from mapo.data.task import Box
from mapo.models.freeze import freeze_vision_tower as freeze
from mapo.models.hf_qwen import load_policy

if TYPE_CHECKING:
    from PIL import Image

    from mapo.models.grounding_race import RaceBoard

log = logging.getLogger(__name__)

Example = tuple[str, Sequence[str]]


def dialogue_ids(tokenizer, user: str, turns: Sequence[str]) -> tuple[list[int], list[int]]:
    """Token ids of one text-only dialogue and a 0/1 loss mask (1 on the assistant's own tokens)."""
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
    _require(steps, examples, "examples to warm the language model up on")
    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    encoded = [dialogue_ids(tokenizer, user, turns) for user, turns in examples]
    encoded = [(ids[:max_tokens], mask[:max_tokens]) for ids, mask in encoded]
    pad = tokenizer.pad_token_id

    def batch_loss(idx: list[int]):
        batch = [encoded[i] for i in idx]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([[t if m else -100 for t, m in zip(ids, mask)] + [-100] * (width - len(ids))
                               for ids, mask in batch])
        return model(input_ids=input_ids, attention_mask=attention, labels=labels).loss

    losses, seconds = _fit(model, list(model.parameters()), len(encoded), batch_loss, steps=steps,
                           batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, seed=seed, desc="LM warm-up",
                           progress=progress)
    return _finish(model, model_dir, "warmup", losses, seconds, steps=steps, batch_size=batch_size, lr=lr,
                   examples=len(encoded))


def _require(steps: int, examples, what: str) -> None:
    if steps < 1:
        raise ValueError(f"steps={steps}: a warm-up needs at least one step (skip the call for none)")
    if not examples:
        raise ValueError(f"no {what}; make the world first (mapo world make)")


def _fit(model, params, n_examples: int, batch_loss, *, steps: int, batch_size: int, lr: float,
         warmup_steps: int, seed: int, desc: str, progress: bool, stop=None, on_step=None,
         weight_decay: float = 0.0) -> tuple[list[float], float]:
    """The warm-ups' shared loop: ``steps`` AdamW steps (linear warm-up, then constant) on batches of example
    indices drawn without replacement per pass; ``batch_loss(indices)`` returns the batch's loss. A non-finite
    loss skips its step. ``stop(n)``, called after the n-th step with the model in eval mode, ends the loop early
    when it returns True (``steps`` is then the cap). ``on_step(n)``: called before the n-th step (the demo sets
    its torch threads there). ``weight_decay``: AdamW's (0 in every warm-up the demo runs). Returns (losses,
    seconds)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
    model.train()
    start = time.time()
    losses: list[float] = []
    order: list[int] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, dynamic_ncols=True)
    for n in bar:
        if on_step is not None:
            on_step(n + 1)
        if len(order) < batch_size:
            more = list(range(n_examples))
            rng.shuffle(more)
            order += more
        idx, order = order[:batch_size], order[batch_size:]
        loss = batch_loss(idx)
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(float(loss.detach())):
            scheduler.step()
            continue  # a non-finite batch is skipped, not applied
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if stop is not None:
            model.eval()
            done = stop(n + 1)
            model.train()
            if done:
                break
    bar.close()
    model.eval()
    return losses, time.time() - start


def _finish(model, model_dir: Path, key: str, losses: list[float], seconds: float, **info) -> dict:
    """Write the weights back (atomically) and record the run's summary under ``key`` in ``mapo_model.json``."""
    summary = {**info, "first_loss": round(losses[0], 4) if losses else None,
               "last_loss": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4) if losses else None,
               "seconds": round(seconds, 1)}
    _save_weights(model, model_dir)
    meta_path = model_dir / "mapo_model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta[key] = summary
    meta_path.write_text(json.dumps(meta, indent=2))
    return summary


def _save_weights(model, model_dir: Path) -> None:
    """Write the weights next to the old ones, then swap them in: a kill mid-write leaves the old checkpoint."""
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".warmup-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in os.listdir(tmp):
            if name.endswith((".safetensors", ".safetensors.index.json")):
                os.replace(Path(tmp) / name, model_dir / name)


def adopt_vision_tower(model_dir: str | Path, donor_dir: str | Path) -> int:
    """Copy the vision tower (and its merger: every weight under ``visual``) of the checkpoint in ``donor_dir``
    into the one in ``model_dir`` (weights replaced atomically), and its ``vision_warmup`` record into
    ``mapo_model.json``. How a vision warm-up run on a copy, beside the LM warm-up, joins it: the two train
    disjoint weights. Returns the number of tensors copied."""
    from safetensors.torch import load_file, save_file

    model_dir, donor_dir = Path(model_dir), Path(donor_dir)
    names = [n for n in os.listdir(model_dir) if n.endswith(".safetensors")]
    if names != ["model.safetensors"] or not (donor_dir / "model.safetensors").is_file():
        raise ValueError(f"adopt_vision_tower needs one model.safetensors in {model_dir} and in {donor_dir}")
    weights = load_file(model_dir / "model.safetensors")
    donor = load_file(donor_dir / "model.safetensors")
    tower = [k for k in weights if k.startswith("visual.") or ".visual." in k]
    if not tower or any(k not in donor for k in tower):
        raise ValueError(f"{donor_dir} does not hold the vision tower of {model_dir} (not the same architecture)")
    weights.update({k: donor[k] for k in tower})
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".adopt-") as tmp:
        save_file(weights, Path(tmp) / "model.safetensors", metadata={"format": "pt"})
        os.replace(Path(tmp) / "model.safetensors", model_dir / "model.safetensors")
    donor_meta = json.loads((donor_dir / "mapo_model.json").read_text()) if (donor_dir / "mapo_model.json").is_file() \
        else {}
    if "vision_warmup" in donor_meta:
        meta_path = model_dir / "mapo_model.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        meta["vision_warmup"] = donor_meta["vision_warmup"]
        meta_path.write_text(json.dumps(meta, indent=2))
    return len(tower)


ImageExample = tuple["Image.Image", str, str]  # (image as the model sees it, user text, assistant answer)


def warm_up_grounding(model_dir: str | Path, examples: Sequence[ImageExample], *, steps: int = 200,
                      batch_size: int = 32, lr: float = 3e-3, warmup_steps: int = 10, seed: int = 0,
                      max_pixels: int = 224 * 224, freeze_vision_tower: bool = False,
                      held_out: Sequence[tuple[Image.Image, str, Sequence[float]]] = (),
                      target_hit_rate: float | None = None, max_steps: int | None = None, check_every: int = 100,
                      progress: bool = True, on_step=None, weight_decay: float = 0.0,
                      race: RaceBoard | None = None, peers_alive=None, record_as: str = "grounding") -> dict:
    """Train the checkpoint in ``model_dir`` for ``steps`` AdamW steps on one-turn image questions and write it
    back in place (weights replaced atomically). Returns a summary, also recorded under ``record_as`` in
    ``mapo_model.json`` (another key keeps an earlier run's record: a restart with a fresh optimizer).

    A real VLM is pretrained on grounding (name an object, get its box) before any agentic fine-tuning; a tiny
    model built from scratch is not, and multimodal SFT's one box per trajectory did not teach it where to look
    within the demo's budget (every zoom went to one place). ``examples``: ``(image, question, answer)``; each
    image is shown within ``max_pixels`` (the protocol's ``image_max_pixels``), as the agent shows it. The loss is
    on the answer and the end of turn. ``freeze_vision_tower``: keep the tower ``warm_up_vision`` trained fixed
    (``mapo.models.freeze``; its merger and the language model train). ``held_out``: ``(image, question, target
    box)`` grounding questions it does not train on; the summary reports ``held_out_hit_rate``, the share whose
    greedy answer is a box covering at least half of the target (what evaluation calls a hit).

    ``target_hit_rate``: train on past ``steps`` until the held-out hit rate reaches it, measured every
    ``check_every`` steps, up to ``max_steps`` in all (the same seed's steps are the same either way: a run that
    reaches the bar at ``steps`` is the run without one). The summary's ``held_out_curve`` lists
    ``[step, hit rate]`` of every check and ``steps`` the steps trained. ``on_step(n)``: called before step n.
    ``weight_decay``: AdamW's (0: the demo's; 1.0 kept a seed from taking at all, docs/results.md section 14).

    ``race``: this run is one of several racing on copies of the model (``mapo.models.grounding_race``): it posts
    each check there, including one at the cap, and stops as soon as the race is decided; the summary's ``race``
    says whether it won. ``peers_alive()``: False once the other runs' process has ended."""
    _require(steps, examples, "grounding examples")
    if target_hit_rate is not None and not held_out:
        raise ValueError("target_hit_rate needs held_out grounding questions to measure the hit rate on (the "
                         "world's val split: make it with n_val > 0, or drop the target)")
    cap = max(steps, max_steps or steps) if target_hit_rate is not None else steps
    model_dir = Path(model_dir)
    backend = load_policy(model_dir)
    encoded = _encode_image_questions(backend, examples, max_pixels)

    def batch_loss(idx: list[int]):
        return _image_question_loss(backend, [encoded[i] for i in idx])

    model = backend.model
    if freeze_vision_tower:
        freeze(model)
    curve: list[list[float]] = []

    def reached(n: int) -> bool:  # after step n: past `steps`, every `check_every`, is the bar reached?
        if n < steps or (n - steps) % max(1, check_every) or n == cap:
            return False
        curve.append([n, _grounding_hit_rate(backend, held_out, max_pixels)])
        log.info("grounding warm-up: held-out hit rate %.2f after %d steps (target %.2f)", curve[-1][1], n,
                 target_hit_rate)
        return curve[-1][1] >= target_hit_rate

    def raced(n: int) -> bool:  # after step n: is the race decided, or has this run nothing left to train?
        if race.winner() is not None:
            return True
        if n < steps or ((n - steps) % max(1, check_every) and n != cap):
            return False
        curve.append([n, _grounding_hit_rate(backend, held_out, max_pixels)])
        log.info("grounding warm-up (racing run %d): held-out hit rate %.2f after %d steps (target %.2f)", race.run,
                 curve[-1][1], n, target_hit_rate)
        return race.after_check(n, curve[-1][1], peers_alive)

    if race is not None and target_hit_rate is None:
        raise ValueError("a grounding race needs target_hit_rate: the bar that decides it")
    stop = raced if race is not None else reached if target_hit_rate is not None and cap > steps else None
    losses, seconds = _fit(model, [p for p in model.parameters() if p.requires_grad], len(encoded), batch_loss,
                           steps=cap, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, seed=seed,
                           desc="grounding warm-up", progress=progress, on_step=on_step, weight_decay=weight_decay,
                           stop=stop)
    stopped = bool(curve) and curve[-1][1] >= target_hit_rate
    trained = curve[-1][0] if stopped else cap
    info: dict = {}
    if race is not None:
        won = race.winner()
        trained = curve[-1][0] if curve else 0
        info["race"] = {"run": race.run, "runs": race.runs, "won": won == race.run, "winner": won,
                        "curves": {str(i): sorted(c.items()) for i, c in enumerate(race.curves())}}
    if held_out and (curve or race is None):  # (a race's run measured at its checks; a loser may have none)
        if not curve or curve[-1][0] != trained:  # the last step's rate, unless a check just measured it
            curve.append([trained, _grounding_hit_rate(backend, held_out, max_pixels)])
        info |= {"held_out_hit_rate": curve[-1][1], "held_out_curve": curve, "target_hit_rate": target_hit_rate}
    return _finish(model, model_dir, record_as, losses, seconds, steps=trained, batch_size=batch_size, lr=lr,
                   examples=len(encoded), frozen_vision_tower=freeze_vision_tower, **info)


def _encode_image_questions(backend, examples: Sequence[ImageExample], max_pixels: int) -> list[_Example]:
    """``(image, question, answer)`` examples as one-turn chat sequences for ``backend``, each image fitted to
    ``max_pixels`` on the model's grid; the loss mask covers the answer and its end of turn."""
    tok = backend.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    encoded = []
    for image, question, answer in examples:
        image = fit_to_budget(image, max_pixels, factor=backend.image_factor)
        response = tok(answer, add_special_tokens=False)["input_ids"] + [eos]
        encoded.append(_Example(torch.tensor(backend.encode(_prompt(backend, question), [image])),
                                torch.tensor(response), torch.ones(len(response), dtype=torch.long), [image]))
    return encoded


def _image_question_loss(backend, batch: Sequence[_Example]) -> torch.Tensor:
    """Mean negative log-likelihood of the answers' tokens of encoded image questions (one forward pass)."""
    logprobs, _ = backend.sequence_logprobs(list(batch))
    mask = torch.nn.utils.rnn.pad_sequence([b.response_mask for b in batch], batch_first=True)
    mask = mask[:, : logprobs.shape[1]].to(logprobs.dtype)
    return -(logprobs * mask).sum() / mask.sum()


def _grounding_hit_rate(backend, examples, max_pixels: int, chunk: int = 25) -> float:
    """Share of ``(image, question, target box)`` whose greedy answer is a box that covers at least half of the
    target: the answer itself (``[x1, y1, x2, y2]``) or, asked in the agent's prompt, the zoom call's
    ``bbox_2d`` (relative coordinates are scaled to the image). An answer that holds no box counts as a miss."""
    hits = 0
    for start in range(0, len(examples), chunk):
        part = examples[start:start + chunk]
        contexts = []
        for image, question, _ in part:
            image = fit_to_budget(image, max_pixels, factor=backend.image_factor)
            contexts.append(Context(ids=backend.encode(_prompt(backend, question), [image]), images=[image]))
        turns = any(not isinstance(q, str) for _, q, _ in part)  # a whole turn before the box: room for it
        for gen, (image, _, target) in zip(backend.generate(contexts, 128 if turns else 32,
                                                            ["<|im_end|>", "</tool_call>"], temperature=0.0), part):
            box = answer_box(gen.text, *image.size)
            hits += box is not None and box.contains(Box(*(float(v) for v in target)), 0.5)
    return round(hits / len(examples), 3)


def answer_box(text: str, width: int, height: int) -> Box | None:
    """The box a grounding answer gives: ``[x1, y1, x2, y2]`` alone, or a zoom call's ``bbox_2d`` (fractions of
    the image when every value is at most 1); None when there is none."""
    text = text.split("<|im_end|>")[0]  # generated text keeps its stop
    try:
        values = [float(v) for v in json.loads(text)]
    except (ValueError, TypeError):  # not JSON, or not numbers: a turn with a tool call?
        call = parse_turn(text if text.endswith("</tool_call>") or "<tool_call>" not in text
                          else text + "</tool_call>", require_label=False).tool_call
        values = [float(v) for v in call.bbox] if call is not None else []
    if len(values) != 4:
        return None
    if all(0 <= v <= 1 for v in values):
        values = [values[0] * width, values[1] * height, values[2] * width, values[3] * height]
    return Box(*values)


def _prompt(backend, question) -> str:
    """The prompt of one image question: a question (str) asked alone (``_image_prompt``), or chat messages (the
    agent's own prompt, ``mapo.agent.protocol.prompt_messages``) in the model's chat template."""
    return _image_prompt(question) if isinstance(question, str) else backend.render_chat(question,
                                                                                         add_generation_prompt=True)


def _image_prompt(question: str) -> str:
    """A one-turn question about one image, in the chat format, up to where the assistant answers."""
    return (f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
            "<|im_start|>assistant\n")


@dataclass
class _Example:
    """One encoded image question, shaped like a rollout trajectory for the backend's collate."""

    prompt_ids: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    images: list


def warm_up_vision(model_dir: str | Path, examples: Sequence[tuple[Image.Image, dict[str, int]]],
                   classes: dict[str, int], *, steps: int = 200, batch_size: int = 32, lr: float = 1e-3,
                   seed: int = 0, max_pixels: int = 224 * 224,
                   held_out: Sequence[tuple[Image.Image, dict[str, int]]] = (), progress: bool = True) -> dict:
    """Pretrain the vision tower of the checkpoint in ``model_dir`` alone: its image features (mean- and
    max-pooled) feed one throw-away linear head per attribute, trained with cross-entropy on labelled images;
    the tower's weights are written back in place (atomically), the heads are dropped. Returns a summary (also
    under ``"vision_warmup"`` in ``mapo_model.json``) with the heads' accuracy on the last 10 batches.

    A real VLM's tower is pretrained before the model ever answers a question; a tiny tower from scratch is not,
    and through the language model's gradient alone it learnt nothing of a zoom's fine pattern in 300 steps
    (session pilots, issue #5), while alone, with a linear head, it fits it in ~200. ``examples``: ``(image, {attribute:
    class index})`` (an attribute may be missing from an example); ``classes``: ``{attribute: n_classes}``;
    ``held_out``: labelled images it does not train on, whose accuracy (tower + heads) the summary reports as
    ``held_out_accuracy`` — whether the tower learnt the attribute or the training images."""
    _require(steps, examples, "labelled images for the vision warm-up")
    model_dir = Path(model_dir)
    backend = load_policy(model_dir)
    images = [fit_to_budget(image, max_pixels, factor=backend.image_factor) for image, _ in examples]
    labels = [lab for _, lab in examples]
    torch.manual_seed(seed)
    dim = backend.model.config.text_config.hidden_size
    heads = torch.nn.ModuleDict({a: torch.nn.Linear(2 * dim, n) for a, n in classes.items()})
    tower = backend.model.model.visual
    right: dict[str, list[float]] = {a: [] for a in classes}

    def pooled_features(batch: list) -> torch.Tensor:
        pix = backend.pixel_inputs(batch)
        feats = backend.model.model.get_image_features(pix["pixel_values"], pix["image_grid_thw"]).pooler_output
        return torch.stack([torch.cat([f.mean(0), f.max(0).values]) for f in feats])

    def batch_loss(idx: list[int]):
        pooled = pooled_features([images[i] for i in idx])
        loss = torch.zeros(())
        for a, head in heads.items():
            y = torch.tensor([labels[i].get(a, -100) for i in idx])
            if (y >= 0).any():
                logits = head(pooled)
                loss = loss + torch.nn.functional.cross_entropy(logits, y, ignore_index=-100)
                right[a].append(float((logits.argmax(-1) == y)[y >= 0].float().mean()))
        return loss

    losses, seconds = _fit(tower, list(tower.parameters()) + list(heads.parameters()), len(images), batch_loss,
                           steps=steps, batch_size=batch_size, lr=lr, warmup_steps=0, seed=seed,
                           desc="vision warm-up", progress=progress)
    accuracy = {a: round(sum(v[-10:]) / len(v[-10:]), 3) for a, v in right.items() if v}
    info = {}
    if held_out:
        info["held_out_accuracy"] = _held_out_accuracy(pooled_features, heads, held_out, max_pixels,
                                                       backend.image_factor, batch_size)
    return _finish(backend.model, model_dir, "vision_warmup", losses, seconds, steps=steps, batch_size=batch_size,
                   lr=lr, examples=len(images), train_accuracy_last_10=accuracy, **info)


def _held_out_accuracy(pooled_features, heads, examples, max_pixels: int, factor: int,
                       batch_size: int) -> dict[str, float]:
    """Accuracy of the vision warm-up's heads on labelled images it did not train on, per attribute."""
    right: dict[str, list[int]] = {a: [] for a in heads}
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            pooled = pooled_features([fit_to_budget(image, max_pixels, factor=factor) for image, _ in chunk])
            for a, head in heads.items():
                guess = head(pooled).argmax(-1).tolist()
                right[a] += [int(g == lab[a]) for g, (_, lab) in zip(guess, chunk) if a in lab]
    return {a: round(sum(v) / len(v), 3) for a, v in right.items() if v}
