"""Cold-start SFT: the policy imitates programmatic expert trajectories (think, zoom with a label, answer), or
the user's own multi-turn trajectories with images (``data``: mapo.train.sft_data, docs/sft_data.md).

The SFT sequences are produced by the real protocol code: the rollout engine runs a ``ScriptedBackend`` that
replays the expert's texts, so token ids, crops, image placeholders and masks are exactly what RL will see.
The loss is the mean negative log-likelihood of assistant tokens only (``response_mask`` = 1; the prompt and
the tool observations, image pads included, are masked). AdamW with warm-up and decay, atomic checkpoints,
``resume=True`` continues at the next optimizer step with the same batch order.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.agent.trajectory import Trajectory
from mapo.data.expert import ExpertConfig, expert_trajectory
from mapo.data.parquet import load_tasks
from mapo.data.task import Task
from mapo.models import hf_qwen  # load_policy looked up at call time: tests replace it
from mapo.models.precision import enable_gradient_checkpointing
from mapo.models.scripted import ScriptedBackend
from mapo.train import checkpoint
from mapo.train.config import SFTConfig, dump_config
from mapo.train.metrics_log import MetricsLogger
from mapo.train.optim import build_optimizer, freeze_as_configured
from mapo.train.rl import save_backend
from mapo.train.sft_data import load_chat_samples

log = logging.getLogger("mapo.sft")


def expert_rollouts(tasks: list[Task], like_backend, protocol: dict[str, Any], expert: dict[str, Any], *,
                    seed: int = 0, chunk: int = 64, progress: bool = True) -> tuple[list[Trajectory], list[Any]]:
    """Run the expert texts through the rollout engine. Returns (trajectories, expert records), aligned.

    The expert writes in the protocol's mode and coordinate system (taken from ``protocol``), so what it
    writes parses as intended; trajectories cut by a token limit are kept (they teach the same prefix)."""
    proto = ProtocolConfig(**protocol)
    ecfg = ExpertConfig(**{"mode": proto.mode, "coordinates": proto.coordinates, **expert})
    rng = random.Random(seed)
    records = [expert_trajectory(t, rng, ecfg) for t in tasks]
    trajs: list[Trajectory] = []
    bar = tqdm(total=len(tasks), desc="expert rollouts", disable=not progress, dynamic_ncols=True)
    for k in range(0, len(tasks), chunk):
        part = tasks[k:k + chunk]
        # keyed by position, not task id: two tasks may share an id in user data
        script = {(f"{k + j}:{t.id}", 0): records[k + j].turns for j, t in enumerate(part)}
        keyed = [_with_id(t, f"{k + j}:{t.id}") for j, t in enumerate(part)]
        engine = RolloutEngine(ScriptedBackend(like=like_backend, script=script), None, proto)
        for traj, task in zip(engine.run(keyed, 1), part):
            traj.task = task
            trajs.append(traj)
        bar.update(len(part))
    bar.close()
    return trajs, records


def _with_id(task: Task, new_id: str) -> Task:
    return replace(task, id=new_id)


def sft_batches(n: int, batch_size: int, epochs: float, seed: int) -> list[list[int]]:
    """The whole run's batches of trajectory indices: a seeded shuffle per epoch, ``ceil(epochs * n /
    batch_size)`` batches in all (a fractional epoch takes the first part of the last shuffle)."""
    total = math.ceil(epochs * n / batch_size)
    flat: list[int] = []
    epoch = 0
    while len(flat) < total * batch_size:
        order = list(range(n))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        flat.extend(order)
        epoch += 1
    return [flat[i * batch_size:(i + 1) * batch_size] for i in range(total)]


def nll_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed negative log-likelihood over masked tokens and the token count. logprobs, mask: [B, L]."""
    mask = mask[:, : logprobs.shape[1]].to(logprobs.dtype)
    return -(logprobs * mask).sum(), mask.sum()


def run_sft(cfg: SFTConfig, *, resume: bool = False, backend=None, tasks: list[Task] | None = None,
            stop_after: int | None = None) -> Path:
    """`mapo sft`: fine-tune ``cfg.model.path`` on expert trajectories; returns ``out_dir/final`` (written
    only when the run completes). ``stop_after``: stop after this many optimizer steps (simulates a kill)."""
    out_dir = Path(cfg.out_dir)
    ckpt_root = out_dir / "checkpoints"
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out_dir / "config.yaml")
    checkpoint.seed_everything(cfg.seed)
    ckpt = checkpoint.latest_checkpoint(ckpt_root) if resume else None
    if backend is None:
        # fp32 master weights computing in cfg.model.dtype (mapo.models.precision)
        backend = hf_qwen.load_policy(ckpt / "model" if ckpt else cfg.model.path, device=cfg.model.device,
                                      dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code,
                                      master_weights=True)
    if cfg.data is not None:  # the user's own trajectories (mapo.train.sft_data)

        trajs = load_chat_samples(cfg.data, backend, cfg.protocol, max_rows=cfg.max_tasks, max_tokens=cfg.max_tokens)
        log.info("sft data %s: %d trajectories, %d trained tokens", cfg.data, len(trajs),
                 sum(int(t.response_mask.sum()) for t in trajs))
    else:
        if tasks is None:
            tasks = load_tasks(cfg.train)
        tasks = tasks[: cfg.max_tasks] if cfg.max_tasks else tasks
        if not tasks:
            raise ValueError(f"sft train={cfg.train}: no tasks; make them with `mapo world make`")
        trajs, records = expert_rollouts(tasks, backend, cfg.protocol, cfg.expert, seed=cfg.seed,
                                         progress=cfg.progress)
        _log_expert_mix(records, trajs)
    batches = sft_batches(len(trajs), cfg.batch_size, cfg.epochs, cfg.seed)
    model = backend.model
    if frozen := freeze_as_configured(model, cfg.model):
        log.info("vision tower frozen (%d parameters); its merger and the language model train", frozen)
    if cfg.model.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    optimizer, scheduler = build_optimizer(model.parameters(), cfg.optim, len(batches))
    step = 0
    if ckpt is not None:
        step = checkpoint.load_checkpoint(ckpt, optimizer=optimizer, scheduler=scheduler).step
        log.info("resumed SFT from %s (optimizer step %d)", ckpt, step)
    model.train()
    with MetricsLogger(out_dir, total_steps=len(batches), start_step=step, progress=cfg.progress,
                       tensorboard=True, desc="sft", show=("loss",)) as logger:
        last = len(batches) if stop_after is None else min(len(batches), step + stop_after)
        while step < last:
            batch = batches[step]
            step += 1
            optimizer.zero_grad(set_to_none=True)
            total_nll, total_tokens = 0.0, float(sum(int(trajs[i].response_mask.sum()) for i in batch))
            for k in range(0, len(batch), cfg.micro_batch_size):
                micro = [trajs[i] for i in batch[k:k + cfg.micro_batch_size]]
                logprobs, _ = backend.sequence_logprobs(micro, temperature=1.0)
                mask = torch.nn.utils.rnn.pad_sequence([t.response_mask for t in micro], batch_first=True)
                nll, _ = nll_loss(logprobs, mask.to(logprobs.device))
                (nll / max(total_tokens, 1.0)).backward()
                total_nll += float(nll.detach())
            loss = total_nll / max(total_tokens, 1.0)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm)
            if math.isfinite(loss) and math.isfinite(float(grad_norm)):
                optimizer.step()
                skipped = 0.0
            else:
                log.warning("sft step %d: non-finite loss or gradient; optimizer step skipped", step)
                skipped = 1.0
            scheduler.step()
            logger.log(step, {"loss": loss, "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0],
                              "tokens": total_tokens, "skipped_update": skipped})
            if step % cfg.save_every == 0 or step == len(batches):
                checkpoint.save_checkpoint(ckpt_root, step, save_model=lambda d: save_backend(backend, d),
                                           optimizer=optimizer, scheduler=scheduler, state={"kind": "sft"},
                                           keep_last=cfg.keep_last)
    final = out_dir / "final"
    if step >= len(batches):
        checkpoint.write_atomically(final, lambda d: save_backend(backend, d, protocol=cfg.protocol,  # or nothing
                                                                  dtype=cfg.model.dtype))
    return final


def _log_expert_mix(records: list[Any], trajs: list[Trajectory]) -> None:
    mix = Counter(r.imperfection for r in records)
    cut = sum(1 for t in trajs if t.stop_reason != "answer")
    log.info("expert trajectories: %s; %d of %d did not reach an answer within the protocol's limits",
             dict(mix), cut, len(trajs))
