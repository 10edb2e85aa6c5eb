"""RL step: mapo's trainer vs TRL's ``GRPOTrainer`` on the same work, then mapo's multi-turn MAPO step.

Same work on both sides: one tiny random Qwen2-VL checkpoint (loaded twice), the same prompts (the agent
protocol's system prompt + the world task's image and question), P prompts x G samples, at most N new tokens,
temperature 1 without top-k/top-p, no KL/reference model, one optimisation epoch with one optimizer step over
the whole batch in one forward/backward, token-mean loss (TRL ``dapo``), the same gradient clipping, no
gradient checkpointing (TRL's default turns it on).

The two steps are interleaved in one process: TRL's training loop runs, and a callback runs one mapo step
after each TRL step, so load on the machine hits both alike. TRL's step is timed from the end of the previous
mapo step to the end of its optimizer step (so its data loading counts, as mapo's prompt sampling does).
"""

from __future__ import annotations

import inspect
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Figure, Skip, median, speedup_from_rates

NAME = "rl_step"


@dataclass
class StepSize:
    """The shared GRPO setting."""

    prompts: int
    """P: prompts per step."""
    group_size: int
    """G: samples per prompt."""
    max_new_tokens: int
    """N: most tokens generated per sample (single-turn) or per turn (multi-turn)."""
    steps: int
    """Timed steps per side (after one warm-up step each)."""

    @property
    def samples(self) -> int:
        return self.prompts * self.group_size


def mapo_config(model_dir: Path, out_dir: Path, size: StepSize, estimator: str, max_turns: int,
                like_trl: bool = True):
    """A ``TrainConfig`` for the benchmark: the GRPO setting above; groups with all-zero advantages kept (a
    random policy rarely earns a reward, and TRL updates anyway). ``like_trl``: the whole batch in one
    forward/backward and no gradient-variance probe, as TRL does; otherwise the trainer's defaults (one group
    per micro-batch, the probe on)."""
    from mapo.train.config import TrainConfig

    return TrainConfig.model_validate({
        "seed": 0,
        "model": {"path": str(model_dir)},
        "rollout": {"group_size": size.group_size, "prompts_per_step": size.prompts,
                    "protocol": {"max_turns": max_turns, "max_new_tokens_per_turn": size.max_new_tokens,
                                 "max_response_tokens": max(2048, max_turns * size.max_new_tokens * 4),
                                 "temperature": 1.0}},
        "algorithm": {"estimator": estimator, "ppo_epochs": 1, "mini_batch_groups": size.prompts,
                      "micro_batch_size": size.samples if like_trl else None, "skip_zero_adv_groups": False,
                      "clip_low": 0.2, "clip_high": 0.2, "loss_agg_mode": "token-mean", "kl_coef": 0.0},
        "optim": {"lr": 1e-6, "max_grad_norm": 1.0},
        "grad_variance": {"enabled": not like_trl},
        "run": {"total_steps": 10_000, "out_dir": str(out_dir), "progress": False, "tensorboard": False},
    })


def mapo_trainer(setup, out_dir: Path, size: StepSize, estimator: str = "grpo", max_turns: int = 1,
                 paced: bool = False, verifier=None, like_trl: bool = True):
    """An ``RLTrainer`` on the setup's checkpoint; ``paced`` makes the random model act like a trained one
    (see ``tiny_setup.expert_paced``)."""
    import tiny_setup

    from mapo.models.hf_qwen import load_policy
    from mapo.train.rl import RLTrainer

    backend = load_policy(setup.model_dir)
    if paced:
        backend = tiny_setup.expert_paced(backend, setup.tasks)
    cfg = mapo_config(setup.model_dir, out_dir, size, estimator, max_turns, like_trl)
    params = inspect.signature(RLTrainer).parameters
    # the trainer takes the policy either ready-made or as a factory (its injection point has had both forms)
    inject = {"backend_factory": lambda path: backend} if "backend_factory" in params else {"backend": backend}
    return RLTrainer(cfg, verifier=verifier or tiny_setup.untrained_verifier(), tasks=setup.tasks, **inject)


def _image_only_processor(model_dir: Path):
    """A ``Qwen2VLProcessor`` without a video processor: transformers' default one needs torchvision, which
    this CPU environment does not have; images never need it."""
    from transformers import AutoTokenizer, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_dir, local_files_only=True)
    return ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                     chat_template=tokenizer.chat_template)


def trl_dataset(tasks):
    """The tasks as TRL expects them: conversational prompts (the same text mapo's protocol renders) and an
    ``image`` column; the image goes before the user's text, as in mapo's first user turn."""
    from datasets import Dataset

    from mapo.agent.protocol import ProtocolConfig, system_prompt, user_text

    cfg = ProtocolConfig()
    rows = [{"prompt": [{"role": "system", "content": system_prompt(cfg)},
                        {"role": "user", "content": user_text(t.question, t.options_block(), t.image.width,
                                                              t.image.height, cfg)}],
             "image": t.image, "answer": t.answer, "options": list(t.options)} for t in tasks]
    return Dataset.from_list(rows)


def trl_reward(completions, answer, options, **_) -> list[float]:
    """mapo's multiple-choice match (the trainer's default reward), applied to TRL's completions."""
    from mapo.agent.parser import parse_turn
    from mapo.rewards.choice import extract_choice

    out = []
    for completion, letter, opts in zip(completions, answer, options):
        text = completion[0]["content"] if isinstance(completion, list) else completion
        parsed = parse_turn(text)
        got = extract_choice(parsed.answer, opts) if getattr(parsed, "answer", None) else None
        out.append(1.0 if got == letter else 0.0)
    return out


def run_side_by_side(setup, size: StepSize, work_dir: Path) -> dict:
    """Interleave TRL and mapo steps; returns per-step seconds and lengths of both sides."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    mapo = mapo_trainer(setup, work_dir / "mapo", size)
    # what `mapo train` does by default: one group per forward/backward, gradient-variance probe on
    mapo_default = mapo_trainer(setup, work_dir / "mapo_default", size, like_trl=False)
    mapo_times: list[float] = []
    mapo_tokens: list[float] = []
    default_times: list[float] = []
    trl_times: list[float] = []

    class Interleave(TrainerCallback):
        mark = 0.0

        def on_train_begin(self, args, state, control, **kw):
            Interleave.mark = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            trl_times.append(time.perf_counter() - Interleave.mark)
            start = time.perf_counter()
            metrics = mapo.train_step()
            mapo_times.append(time.perf_counter() - start)
            mapo_tokens.append(float(metrics.get("response_length", float("nan"))))
            start = time.perf_counter()
            mapo_default.train_step()
            default_times.append(time.perf_counter() - start)
            Interleave.mark = time.perf_counter()

    args = GRPOConfig(
        output_dir=str(work_dir / "trl"), per_device_train_batch_size=size.samples,
        num_generations=size.group_size, max_completion_length=size.max_new_tokens,
        gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1, beta=0.0,
        learning_rate=1e-6, max_grad_norm=1.0, epsilon=0.2, loss_type="dapo", scale_rewards="group",
        temperature=1.0, top_k=0, top_p=1.0, max_steps=size.steps + 1, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, bf16=False, dataloader_num_workers=0, disable_tqdm=True, seed=0,
        # TRL turns gradient checkpointing on by default (recomputing activations, ~10% of its step here);
        # mapo does not checkpoint, so the same work means off
        gradient_checkpointing=False,
    )
    model = Qwen2VLForConditionalGeneration.from_pretrained(setup.model_dir, dtype=torch.float32)
    trainer = GRPOTrainer(model=model, reward_funcs=trl_reward, args=args, train_dataset=trl_dataset(setup.tasks),
                          processing_class=_image_only_processor(setup.model_dir), callbacks=[Interleave()])
    trainer.train()
    trl_lengths = [h["completions/mean_length"] for h in trainer.state.log_history
                   if "completions/mean_length" in h]
    # drop the warm-up step of each side
    return {"trl_s": trl_times[1:], "mapo_s": mapo_times[1:], "trl_len": trl_lengths[1:],
            "mapo_len": mapo_tokens[1:], "mapo_default_s": default_times[1:]}


def multi_turn_step(setup, size: StepSize, work_dir: Path, steps: int, max_turns: int = 3) -> dict:
    """mapo's MAPO step (estimator ``mapo``, multi-turn with zooms and verifier calls), expert-paced. Each turn
    may use up to 128 new tokens, so that no expert turn is cut."""
    size = StepSize(size.prompts, size.group_size, max(size.max_new_tokens, 128), steps)
    trainer = mapo_trainer(setup, work_dir / "mapo_multi", size, estimator="mapo", max_turns=max_turns, paced=True)
    trainer.train_step()  # warm-up
    times, metrics = [], []
    for _ in range(steps):
        start = time.perf_counter()
        metrics.append(trainer.train_step())
        times.append(time.perf_counter() - start)
    return {"s": times, "metrics": metrics}


def run(quick: bool = False) -> list[Figure]:
    try:
        import trl
    except ImportError as exc:
        raise Skip(f"TRL is not installed ({exc}); `pip install -e '.[bench]'`") from exc
    import tiny_setup

    size = StepSize(prompts=2, group_size=2, max_new_tokens=8, steps=2) if quick else \
        StepSize(prompts=4, group_size=4, max_new_tokens=64, steps=5)
    with tempfile.TemporaryDirectory(prefix="mapo-bench-rl-") as tmp:
        work = Path(tmp)
        setup = tiny_setup.build(work, n_tasks=max(8, size.prompts * (size.steps + 2)), family="qwen2_vl")
        side = run_side_by_side(setup, size, work)
        multi = multi_turn_step(setup, size, work, steps=1 if quick else 3)
    trl_rate = size.samples / median(side["trl_s"])
    mapo_rate = size.samples / median(side["mapo_s"])
    setting = (f"P={size.prompts} x G={size.group_size}, <= {size.max_new_tokens} new tokens, 1 epoch, "
               f"tiny Qwen2-VL; mean completion tokens mapo {median(side['mapo_len']):.0f} / "
               f"TRL {median(side['trl_len']):.0f}")
    figures = [Figure(
        benchmark=NAME, measure="single-turn GRPO step", unit="samples/s", mapo=mapo_rate, reference=trl_rate,
        reference_name=f"TRL {trl.__version__} GRPOTrainer", speedup=speedup_from_rates(mapo_rate, trl_rate),
        note=setting, extra={k: v for k, v in side.items()})]
    trl_tok = size.samples * median(side["trl_len"]) / median(side["trl_s"])
    mapo_tok = size.samples * median(side["mapo_len"]) / median(side["mapo_s"])
    figures.append(Figure(
        benchmark=NAME, measure="single-turn GRPO step", unit="gen. tokens/s", mapo=mapo_tok, reference=trl_tok,
        reference_name=f"TRL {trl.__version__} GRPOTrainer", speedup=speedup_from_rates(mapo_tok, trl_tok),
        note="the same steps counted in generated tokens (the two sides stop at slightly different lengths)"))
    default_rate = size.samples / median(side["mapo_default_s"])
    figures.append(Figure(
        benchmark=NAME, measure="single-turn GRPO step, mapo's default batching", unit="samples/s",
        mapo=default_rate, reference=trl_rate, reference_name=f"TRL {trl.__version__} GRPOTrainer",
        speedup=speedup_from_rates(default_rate, trl_rate),
        note=f"as `mapo train` runs by default: one group (G={size.group_size}) per forward/backward, "
             "gradient-variance probe on; same work otherwise"))
    multi_rate = size.samples / median(multi["s"])
    turns = median([m.get("turns", float("nan")) for m in multi["metrics"]])
    calls = median([m.get("calls_per_traj", float("nan")) for m in multi["metrics"]])
    figures.append(Figure(
        benchmark=NAME, measure="multi-turn MAPO step (for reference)", unit="samples/s", mapo=multi_rate,
        reference=mapo_rate, reference_name="mapo single-turn GRPO step",
        speedup=None, note=f"same P x G, <= 3 turns of <= 128 tokens (mean {turns:.1f} turns, {calls:.1f} zooms), "
             "verifier on every crop, expert-paced random model",
        extra={"seconds": multi["s"], "metrics": multi["metrics"]}))
    return figures
