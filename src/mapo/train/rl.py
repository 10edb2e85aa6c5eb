"""The MAPO RL loop, readable top to bottom (CleanRL style).

One step: sample prompts -> G rollouts each (the agent's batched engine) -> outcome rewards -> verifier scores
for every tool call -> advantages by registry name (grpo | rloo | mapo | mapo_turn) -> PPO epochs over
mini-batches with the clipped loss -> metrics -> checkpoint.

Robustness: a sample whose rollout or reward raises is logged and dropped; a NaN/inf reward, score, loss or
gradient skips that update with a warning (the step is still logged and training continues); checkpoints are
atomic and ``resume=True`` continues from the newest one with the same model, optimizer, scheduler and RNG.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mapo.agent.call_scores import TurnScores, score_tool_calls
from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.agent.trajectory import Trajectory
from mapo.core.advantages import get_advantage
from mapo.core.losses import agg_loss, batch_totals, kl_loss, policy_loss
from mapo.data.parquet import load_tasks
from mapo.data.stream import open_tasks
from mapo.data.task import Task
from mapo.models import hf_qwen
from mapo.models.precision import enable_gradient_checkpointing, resolve_dtype
from mapo.rewards import outcome_reward
from mapo.train.batch import rl_batch
from mapo.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    write_atomically,
)
from mapo.train.config import TrainConfig, dump_config
from mapo.train.grad_variance import GradientProjector, gradient_variance
from mapo.train.metrics_log import MetricsLogger
from mapo.train.optim import build_optimizer, freeze_as_configured
from mapo.train.rollout_stats import batch_stats
from mapo.train.theory_metrics import theory_metrics
from mapo.verifier import load_verifier

log = logging.getLogger("mapo.train")

#: Micro-batch metrics that are shares of the mini-batch's loss: summed per mini-batch, not averaged.
_SUMMED = ("pg_loss", "kl")

RewardFn = Callable[[Trajectory], tuple[float, dict[str, Any]]]


def sample_prompts(n_tasks: int, step: int, per_step: int, seed: int) -> list[int]:
    """Task indices for RL step ``step`` (1-based): consecutive slices of a seeded permutation per epoch, so
    the choice depends only on (seed, step) and a resumed run samples exactly what it would have."""
    out = []
    start = (step - 1) * per_step
    for pos in range(start, start + per_step):
        epoch, k = divmod(pos, n_tasks)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n_tasks)[k]))
    return out


def micro_batches(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[i:i + size]) for i in range(0, len(indices), size)]


def build_engine(backend, protocol: ProtocolConfig | dict[str, Any]):
    """The agent's rollout engine over ``backend`` with ``protocol`` (a ProtocolConfig or its fields)."""
    return RolloutEngine(backend, None, ProtocolConfig.model_validate(protocol))


def save_backend(backend, out_dir: Path, protocol: ProtocolConfig | dict[str, Any] | None = None,
                 dtype: str | None = None) -> None:
    """Write the policy as a standard Hugging Face directory (weights, config, tokenizer, image processor),
    plus ``protocol.yaml`` (the protocol it was trained with, which `mapo eval` picks up) when given.
    ``dtype``: the weights' dtype on disk (None: the parameters' own, fp32 master weights when training)."""
    if hasattr(backend, "save_pretrained"):
        if dtype is None:
            backend.save_pretrained(out_dir)
        else:
            backend.save_pretrained(out_dir, dtype=resolve_dtype(dtype))
    else:
        backend.model.save_pretrained(out_dir, safe_serialization=True)
        backend.tokenizer.save_pretrained(out_dir)
        processor = getattr(backend, "image_processor", None)
        if processor is not None:
            processor.save_pretrained(out_dir)
    if protocol is not None:
        spelled = ProtocolConfig.model_validate(protocol).model_dump(mode="json")
        (Path(out_dir) / "protocol.yaml").write_text(yaml.safe_dump(spelled, sort_keys=False))


def load_backend(path: str | Path, cfg: TrainConfig):
    """The policy for training: fp32 master weights computing in ``cfg.model.dtype`` (mapo.models.precision)."""
    # looked up at call time, so a test (or a user) can replace the loader
    return hf_qwen.load_policy(path, device=cfg.model.device, dtype=cfg.model.dtype,
                               trust_remote_code=cfg.model.trust_remote_code, master_weights=True,
                               fast_generation=cfg.model.fast_generation)


def _finite(x: torch.Tensor | float) -> bool:
    return bool(torch.isfinite(torch.as_tensor(x)).all())


def _aligned(turns: TurnScores, n: int) -> list[list[float]]:
    """Per trajectory, the scores of its calls that returned a crop (the alignment metric, as `mapo eval`)."""
    return [list(turns.by_turn(i).values()) for i in range(n)]


class RLTrainer:
    """Holds the state of one RL run. Injectable for tests and custom setups: ``backend_factory(path)`` builds
    the policy from a checkpoint directory (default ``load_policy``), ``verifier``, ``tasks``, ``reward_fn``."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, backend_factory: Callable[[Path], Any] | None = None,
                 verifier=None, tasks: list[Task] | None = None, reward_fn: RewardFn | None = None):
        self.cfg = cfg
        self.out_dir = Path(cfg.run.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed)
        ckpt = latest_checkpoint(self.ckpt_root) if resume else None
        make_backend = backend_factory or (lambda path: load_backend(path, cfg))
        self.backend = make_backend(Path(ckpt / "model" if ckpt else cfg.model.path))
        self.model = self.backend.model
        if frozen := freeze_as_configured(self.model, cfg.model):
            log.info("vision tower frozen (%d parameters); its merger and the language model train", frozen)
        if cfg.model.gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        self.engine = build_engine(self.backend, cfg.rollout.protocol)
        self.temperature = self.engine.cfg.temperature
        if verifier is None:
            verifier = load_verifier(cfg.verifier)
        self.verifier = verifier
        if tasks is None:  # a lazy sequence: a row is decoded when a step samples it (mapo.data.stream)
            tasks = open_tasks(cfg.data.train, max_tasks=cfg.data.max_tasks, rows=cfg.data.rows)
        self.tasks = tasks[: cfg.data.max_tasks] if cfg.data.max_tasks else tasks
        if not self.tasks:
            raise ValueError(f"data.train={cfg.data.train}: no tasks; make them with `mapo world make`")
        reward_cfg = cfg.reward
        self.reward_fn = reward_fn or (lambda t: outcome_reward(
            t.answer, t.task, reward_cfg, response="".join(r.text for r in t.turns),
            successful_tool_calls=sum(1 for r in t.tool_calls if r.tool is not None and r.tool.ok)))
        self.advantage_fn = get_advantage(cfg.algorithm.estimator)
        alg = cfg.algorithm
        self.n_groups = cfg.rollout.prompts_per_step
        self.updates_per_step = alg.ppo_epochs * math.ceil(self.n_groups / alg.mini_batch_groups)
        self.optimizer, self.scheduler = build_optimizer(
            self.model.parameters(), cfg.optim, cfg.run.total_steps * self.updates_per_step)
        self.projector = (GradientProjector(list(self.model.parameters()), cfg.grad_variance.num_directions,
                                            cfg.grad_variance.seed, cfg.grad_variance.max_params)
                          if cfg.grad_variance.enabled else None)
        self.ref_backend = None
        if alg.kl_coef > 0:
            self.ref_backend = make_backend(Path(cfg.model.path))
            self.ref_backend.model.requires_grad_(False)
        self.step = 0
        if ckpt is not None:
            # last: restores the RNG streams exactly as they were when the checkpoint was written
            self.step = load_checkpoint(ckpt, optimizer=self.optimizer, scheduler=self.scheduler).step
            log.info("resumed from %s (step %d)", ckpt, self.step)
        dump_config(cfg, self.out_dir / "config.yaml")

    # ------------------------------------------------------------------ one RL step
    def train_step(self) -> dict[str, Any]:
        cfg, alg = self.cfg, self.cfg.algorithm
        self.step += 1
        t0 = time.perf_counter()

        # 1. rollouts: G samples for each prompt of this step
        tasks = [self.tasks[i] for i in sample_prompts(len(self.tasks), self.step, self.n_groups, cfg.seed)]
        trajs, index = self._rollout(tasks)
        t_rollout = time.perf_counter() - t0

        # 2. outcome rewards (a sample whose reward raises is dropped)
        trajs, index, rewards, infos = self._rewards(trajs, index)

        # 3. verifier scores for every tool call (its semantic_claim vs its crop) -> the estimators' turn
        #    tensors; a call that returned no crop (malformed, rejected) scores algorithm.failed_call_score
        turns = score_tool_calls(trajs, self.verifier, alg.failed_call_score, alg.semantic_claim)

        metrics: dict[str, Any] = batch_stats(trajs, infos, _aligned(turns, len(trajs)))
        metrics["reward"] = float(np.mean(rewards)) if len(rewards) else float("nan")
        metrics["dropped_samples"] = self.n_groups * cfg.rollout.group_size - len(trajs)
        metrics["skipped_rows"] = getattr(self.tasks, "skipped_rows", 0)  # unusable data rows so far
        if not trajs or not all(map(math.isfinite, rewards)) or not all(map(math.isfinite, turns.scores())):
            log.warning("step %d: non-finite reward or verifier score (or no sample left); update skipped",
                        self.step)
            metrics.update(skipped_update=1.0, rollout_s=t_rollout, lr=self.scheduler.get_last_lr()[0])
            return metrics

        # 4. advantages by registry name (one call site for every estimator)
        batch = rl_batch(trajs, rewards)
        advantages, _ = self.advantage_fn(batch["token_level_rewards"], batch["response_mask"], index,
                                          **turns.tensors, **alg.estimator_kwargs(self.advantage_fn))
        # what MAPO's variance argument assumes, measured for every estimator
        metrics.update(theory_metrics(batch["token_level_rewards"], turns.tensors, index, alg))
        keep = self._keep(trajs, advantages, index)
        metrics.update(adv_abs_mean=float(advantages[batch["response_mask"] > 0].abs().mean()),
                       kept_fraction=len(keep) / len(trajs))

        # 5. PPO epochs over mini-batches of groups
        t1 = time.perf_counter()
        metrics.update(self._update(trajs, batch, advantages, keep, index))
        metrics.update(rollout_s=t_rollout, update_s=time.perf_counter() - t1)
        return metrics

    def _rollout(self, tasks: list[Task]) -> tuple[list[Trajectory], np.ndarray]:
        """G trajectories per task and their group ids (the task's position in this step: a task drawn twice
        forms two groups)."""
        G = self.cfg.rollout.group_size
        try:
            trajs = self.engine.run(tasks, G)
            return trajs, np.arange(len(trajs)) // G
        except Exception as exc:  # noqa: BLE001 - isolate the bad sample, keep the rest
            log.warning("step %d: batched rollout failed (%s); retrying task by task", self.step, exc)
        trajs, index = [], []
        for k, task in enumerate(tasks):
            try:
                got = self.engine.run([task], G)
            except Exception as exc:  # noqa: BLE001
                log.warning("step %d: task %s dropped: %s", self.step, task.id, exc)
                continue
            trajs.extend(got)
            index.extend([k] * len(got))
        return trajs, np.asarray(index, dtype=np.int64)

    def _rewards(self, trajs: list[Trajectory], index: np.ndarray):
        kept, groups, rewards, infos = [], [], [], []
        for t, g in zip(trajs, index):
            try:
                r, info = self.reward_fn(t)
            except Exception as exc:  # noqa: BLE001
                log.warning("step %d: reward of task %s failed, sample dropped: %s", self.step, t.task.id, exc)
                continue
            kept.append(t)
            groups.append(g)
            rewards.append(float(r))
            infos.append(info)
        return kept, np.asarray(groups, dtype=np.int64), rewards, infos

    def _keep(self, trajs, advantages: torch.Tensor, index: np.ndarray) -> list[int]:
        """Trajectories that enter the loss: optionally without turn-cap hitters and all-zero-advantage groups."""
        alg = self.cfg.algorithm
        keep = list(range(len(trajs)))
        if alg.mask_turn_cap:
            keep = [i for i in keep if not trajs[i].hit_turn_cap]
        if alg.skip_zero_adv_groups:
            live = {g for i, g in enumerate(index) if bool((advantages[i] != 0).any())}
            keep = [i for i in keep if index[i] in live]
        return keep

    def _update(self, trajs, batch, advantages: torch.Tensor, keep: list[int], index: np.ndarray
                ) -> dict[str, float]:
        cfg, alg = self.cfg, self.cfg.algorithm
        out: dict[str, list[float]] = defaultdict(list)
        if not keep:
            return {"skipped_update": 0.0, "optimizer_steps": 0.0, "lr": self.scheduler.get_last_lr()[0]}
        self.model.train()  # generation leaves eval mode; gradient checkpointing acts in train mode only
        ref_lp = self._logprobs(self.ref_backend, trajs, keep) if self.ref_backend is not None else None
        if alg.recompute_old_logprobs:
            batch = {**batch, "old_logprobs": self._logprobs(self.backend, trajs, keep)}
        groups: dict[Any, list[int]] = defaultdict(list)
        for i in keep:
            groups[index[i]].append(i)
        group_list = list(groups.values())
        micro = alg.micro_batch_size or cfg.rollout.group_size
        projections: list[torch.Tensor] = []
        rng = np.random.default_rng([cfg.seed, self.step, 7])
        skipped = 0
        for epoch in range(alg.ppo_epochs):
            order = rng.permutation(len(group_list))
            for m0 in range(0, len(order), alg.mini_batch_groups):
                mini = [i for g in order[m0:m0 + alg.mini_batch_groups] for i in group_list[g]]
                # each micro-batch's loss is divided by the mini-batch's token / sequence count (verl's
                # batch_num_tokens), so their gradients add up to the mini-batch loss's gradient
                totals = batch_totals(batch["response_mask"][mini])
                self.optimizer.zero_grad(set_to_none=True)
                prev = None
                bad = False
                summed: dict[str, float] = defaultdict(float)
                for mb in micro_batches(mini, micro):
                    loss, m = self._micro_loss(trajs, batch, advantages, mb, ref_lp, totals)
                    if not _finite(loss):
                        bad = True
                        break
                    loss.backward()
                    for k, v in m.items():
                        if k in _SUMMED:
                            summed[k] += v
                        else:
                            out[k].append(v)
                    if self.projector is not None and epoch == 0:
                        cur = self.projector.project()
                        projections.append((cur - (prev if prev is not None else 0.0)) * len(mini) / len(mb))
                        prev = cur
                for k, v in summed.items():
                    out[k].append(v)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.max_grad_norm)
                if bad or not _finite(grad_norm):
                    log.warning("step %d: non-finite loss or gradient; optimizer step skipped", self.step)
                    self.optimizer.zero_grad(set_to_none=True)
                    skipped += 1
                    continue
                self.optimizer.step()
                self.scheduler.step()
                out["grad_norm"].append(float(grad_norm))
        self.optimizer.zero_grad(set_to_none=True)
        result = {k: float(np.mean(v)) for k, v in out.items()}
        result.update(skipped_update=float(skipped > 0), optimizer_steps=float(len(out["grad_norm"])),
                      lr=self.scheduler.get_last_lr()[0])
        if self.projector is not None:
            result.update(gradient_variance(projections))
        return result

    def _micro_loss(self, trajs, batch, advantages, mb: list[int], ref_lp, totals: dict[str, torch.Tensor]):
        """Micro-batch ``mb``'s share of its mini-batch's loss (``totals``: the mini-batch's counts), metrics."""
        alg = self.cfg.algorithm
        # Dr.GRPO's constant divisor: the protocol's response limit, not this micro-batch's padded width
        agg = {"agg": alg.loss_agg_mode, "horizon": self.cfg.rollout.protocol.max_response_tokens, **totals}
        logprobs, entropy = self.backend.sequence_logprobs([trajs[i] for i in mb],
                                                           temperature=self.temperature)
        width = logprobs.shape[1]
        mask = batch["response_mask"][mb, :width]
        # observation tokens (image pads) can score -inf under a policy that never samples them; they are
        # outside the loss mask, but -inf - -inf would still put NaN into the masked sums
        logprobs = torch.where(mask > 0, logprobs, torch.zeros_like(logprobs))
        entropy = torch.where(mask > 0, entropy, torch.zeros_like(entropy))
        loss, m = policy_loss(batch["old_logprobs"][mb, :width], logprobs, advantages[mb, :width], mask,
                              clip_low=alg.clip_low, clip_high=alg.clip_high, dual_clip=alg.dual_clip, **agg)
        metrics = {"pg_loss": float(loss.detach()), "clip_frac": m["clip_frac"], "approx_kl": m["approx_kl"]}
        ent = (entropy.detach() * mask).sum() / mask.sum().clamp_min(1)
        metrics["entropy"] = float(ent)
        if alg.entropy_coef:
            loss = loss - alg.entropy_coef * agg_loss(entropy, mask, alg.loss_agg_mode, horizon=agg["horizon"],
                                                      **totals)
        if ref_lp is not None:
            kl, km = kl_loss(logprobs, ref_lp[mb, :width], mask, kind=alg.kl_type, **agg)
            loss = loss + alg.kl_coef * kl
            metrics["kl"] = km["kl"]
        return loss, metrics

    @torch.no_grad()
    def _logprobs(self, backend, trajs, keep: list[int]) -> torch.Tensor:
        """``[B, L]`` log-probs of the kept trajectories' response tokens under ``backend`` (no gradient)."""
        width = max(len(t.response_ids) for t in trajs)
        out = torch.zeros(len(trajs), width)
        for mb in micro_batches(keep, self.cfg.algorithm.micro_batch_size or self.cfg.rollout.group_size):
            lp, _ = backend.sequence_logprobs([trajs[i] for i in mb], temperature=self.temperature)
            out[mb, : lp.shape[1]] = lp.float()
        out = torch.where(torch.isfinite(out), out, torch.zeros_like(out))  # -inf on observation tokens
        return out

    # ------------------------------------------------------------------ the run
    def save(self) -> Path:
        return save_checkpoint(self.ckpt_root, self.step, save_model=lambda d: save_backend(self.backend, d),
                               optimizer=self.optimizer, scheduler=self.scheduler,
                               state={"estimator": self.cfg.algorithm.estimator}, keep_last=self.cfg.run.keep_last)

    def train(self, stop_after: int | None = None) -> Path:
        """Run until ``run.total_steps`` (or ``stop_after`` more steps: used to simulate an interruption).
        Returns the directory of the final model (``out_dir/final``)."""
        cfg = self.cfg
        last = cfg.run.total_steps if stop_after is None else min(cfg.run.total_steps, self.step + stop_after)
        with MetricsLogger(self.out_dir, total_steps=cfg.run.total_steps, start_step=self.step,
                           progress=cfg.run.progress, tensorboard=cfg.run.tensorboard,
                           desc=f"rl {cfg.algorithm.estimator}",
                           show=("accuracy", "reward", "alignment", "tool_call_rate")) as logger:
            evaluating = bool(cfg.run.eval_every and cfg.data.eval)
            if evaluating and cfg.run.eval_at_start and self.step == 0:
                logger.log(0, self.evaluate_all(), advance=False)
            while self.step < last:
                metrics = self.train_step()
                if evaluating and self.step % cfg.run.eval_every == 0:
                    metrics.update(self.evaluate_all())
                logger.log(self.step, metrics)
                if self.step % cfg.run.save_every == 0 or self.step == cfg.run.total_steps:
                    self.save()
        final = self.out_dir / "final"
        if self.step >= cfg.run.total_steps:
            write_atomically(final, lambda d: save_backend(self.backend, d, protocol=self.cfg.rollout.protocol,
                                                           dtype=cfg.model.dtype))
        return final

    def evaluate_all(self) -> dict[str, float]:
        """The periodic evaluation at every ``data.eval_temperatures`` (eval/* for the first, eval_t<T>/*)."""
        out = {}
        for n, temperature in enumerate(self.cfg.data.eval_temperatures):
            prefix = "eval" if n == 0 else f"eval_t{temperature:g}"
            out.update({f"{prefix}/{k}": v for k, v in self.evaluate(temperature=temperature).items()})
        return out

    @torch.no_grad()
    def evaluate(self, tasks: list[Task] | None = None, temperature: float | None = None) -> dict[str, float]:
        """One rollout per task of ``data.eval`` (first ``data.eval_limit``) at ``temperature`` (None: the
        rollout's): accuracy, tool use, hits."""
        if tasks is None:
            tasks = load_tasks(self.cfg.data.eval, limit=self.cfg.data.eval_limit)
        protocol = self.cfg.rollout.protocol
        if temperature is not None:
            protocol = protocol.model_copy(update={"temperature": temperature})
        trajs = build_engine(self.backend, protocol).run(tasks, 1)
        trajs, _, _, infos = self._rewards(trajs, np.arange(len(trajs)))
        alg = self.cfg.algorithm
        turns = score_tool_calls(trajs, self.verifier, alg.failed_call_score, alg.semantic_claim)
        return batch_stats(trajs, infos, _aligned(turns, len(trajs)))


def train(cfg: TrainConfig, *, resume: bool = False) -> Path:
    """`mapo train`: build the trainer from ``cfg`` and run it; returns the final model directory."""
    return RLTrainer(cfg, resume=resume).train()
