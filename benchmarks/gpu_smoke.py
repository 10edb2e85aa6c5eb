"""GPU smoke run: `mapo train`'s RL step on a Qwen2.5-VL-7B-shaped policy (random weights) at DeepEyes resolution.

The architecture comes from tests/fixtures/qwen2_5_vl_7b/config.json (written from transformers' config class;
no download), the rows are generated here (2246 x 1582 canvases, the size of DeepEyes-47k's images), the
weights are random, so nothing is read from the network. The model is fp32 master weights computing in
bfloat16 with gradient checkpointing, exactly as `mapo train --config configs/qwen2_5_vl_7b.yaml` builds it.
The first turn of every rollout is a scripted zoom call (a random policy would never call the tool, and the
point is to push crops through the model); later turns are the model's own sampling.

Full fine-tuning of all 28 layers needs ~139 GiB for weights, fp32 master, AdamW state and gradients before any
activation (`mapo train --dry-run`), more than one GPU holds; ``--layers auto`` keeps the 7B widths, vocabulary
and vision tower and takes as many decoder layers as the estimate fits in this GPU, and says so.

Prints peak memory (measured and estimated), seconds per step, generated and trained tokens per second, and
writes them to OUT/smoke.json. ``--tiny`` runs the same path with the zoo's tiny model on CPU (the test).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "qwen2_5_vl_7b"
GiB = 1024 ** 3


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the zoo's tiny model on CPU (checks the path, no GPU)")
    ap.add_argument("--steps", type=int, default=2, help="RL steps to run")
    ap.add_argument("--layers", default="auto", help="decoder layers: auto (as many as fit) or a number")
    ap.add_argument("--rows", type=int, default=4, help="DeepEyes-like rows generated")
    ap.add_argument("--out", default="runs/gpu_smoke", help="run directory (smoke.json)")
    ap.add_argument("--device", default="auto", help="auto | cuda:0 | cpu")
    return ap.parse_args(argv)


def smoke_config(out: Path, tiny: bool) -> list[str]:
    """`mapo train` overrides of the smoke run: the 7B config's protocol at real resolution, a small batch."""
    pixels = ["rollout.protocol.image_max_pixels=1003520", "rollout.protocol.crop_max_pixels=401408",
              "rollout.protocol.trajectory_max_pixels=2007040", "rollout.protocol.max_new_tokens_per_turn=256",
              "rollout.protocol.max_response_tokens=2048"]
    if tiny:
        pixels = ["rollout.protocol.image_max_pixels=50176", "rollout.protocol.crop_max_pixels=25088",
                  "rollout.protocol.trajectory_max_pixels=100352", "rollout.protocol.max_new_tokens_per_turn=32",
                  "rollout.protocol.max_response_tokens=256", "rollout.protocol.tools_prompt=compact"]
    return [f"run.out_dir={out}", "run.total_steps=100", "run.save_every=100", "run.progress=false",
            "run.tensorboard=false", "rollout.group_size=2", "rollout.prompts_per_step=2",
            "rollout.protocol.max_turns=2", *pixels, "algorithm.mini_batch_groups=2", "algorithm.micro_batch_size=1",
            "algorithm.recompute_old_logprobs=true", "algorithm.skip_zero_adv_groups=false", "optim.lr=1e-6",
            "model.dtype=bfloat16", "model.gradient_checkpointing=true", "grad_variance.enabled=false",
            "verifier.backend=embedded"]


def model_config(tokenizer, layers: int | None, tiny: bool):
    """The 7B architecture with the tokenizer's special-token ids (the vocabulary stays 152,064 rows)."""
    import transformers

    from mapo.models.zoo import _token_ids, tiny_config

    if tiny:
        return tiny_config(tokenizer, "qwen2_5_vl", "tiny")
    config = transformers.AutoConfig.from_pretrained(FIXTURE, local_files_only=True)
    ids = _token_ids(tokenizer)
    config.image_token_id, config.video_token_id = ids["<|image_pad|>"], ids["<|video_pad|>"]
    config.vision_start_token_id, config.vision_end_token_id = ids["<|vision_start|>"], ids["<|vision_end|>"]
    config.text_config.eos_token_id, config.text_config.pad_token_id = ids["<|im_end|>"], ids["<|endoftext|>"]
    if layers:
        config.text_config.num_hidden_layers = layers
        config.text_config.layer_types = config.text_config.layer_types[:layers]
    return config


def layers_that_fit(tokenizer, cfg, budget: float) -> tuple[int, float]:
    """Most decoder layers (<= 28) whose estimated peak fits ``budget`` bytes with the estimate's headroom."""
    from mapo.train import memory

    for layers in range(28, 0, -1):
        with tempfile.TemporaryDirectory() as tmp:
            model_config(tokenizer, layers, tiny=False).save_pretrained(tmp)
            shape = memory.model_shape(tmp)
        ro = cfg.rollout
        work = memory.workload(ro.protocol, micro_batch=cfg.algorithm.micro_batch_size,
                               rollout_batch=ro.prompts_per_step * ro.group_size)
        est = memory.estimate(shape, work, dtype="bfloat16", gradient_checkpointing=True)
        if est.peak <= budget * (1 - memory.HEADROOM):
            return layers, est.peak
    raise SystemExit(f"not even one decoder layer fits {budget / GiB:.0f} GiB")


class FirstTurnZooms:
    """The real policy, except that turn 0 is a scripted zoom call (so crops reach the model)."""

    def __init__(self, real):
        from mapo.models.scripted import ScriptedBackend

        self.real = real
        self.scripted = ScriptedBackend(like=real, script=self._zoom)
        self.generated = 0

    def _zoom(self, ctx) -> str:
        x, y = torch.randint(0, 1700, (2,)).tolist()
        args = {"bbox_2d": [x, y, x + 500, y + 400], "label": "the small red circle"}
        call = json.dumps({"name": "image_zoom_in_tool", "arguments": args})
        return f"<think>Zoom in.</think>\n<tool_call>{call}</tool_call>"

    def generate(self, contexts, max_new_tokens, stop, temperature=1.0):
        if contexts and all(c.turn == 0 for c in contexts):
            return self.scripted.generate(contexts, max_new_tokens, stop, temperature)
        out = self.real.generate(contexts, max_new_tokens, stop, temperature)
        self.generated += sum(len(g.ids) for g in out)
        return out

    def __getattr__(self, name):
        return getattr(self.real, name)


class BrightnessVerifier:
    """A stand-in verifier (the smoke measures the policy): a score in [-1, 1] from the crop's brightness."""

    def score(self, texts, images):
        return torch.tensor([im.convert("L").resize((8, 8)).getpixel((4, 4)) / 127.5 - 1 for im in images])


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mapo.data.world import generate_tasks
    from mapo.data.world.config import WorldConfig
    from mapo.models.hf_qwen import HFQwenBackend
    from mapo.models.precision import enable_gradient_checkpointing, resolve_device
    from mapo.models.zoo import image_processor_for, train_tokenizer
    from mapo.train.config import TrainConfig, load_config
    from mapo.train.rl import RLTrainer

    torch.manual_seed(0)
    device = resolve_device("cpu" if args.tiny else args.device)
    out = Path(args.out)
    t0 = time.perf_counter()
    world = WorldConfig(canvas_width=2246, canvas_height=1582, n_train=args.rows)
    tasks = generate_tasks(world, "train", args.rows)
    tokenizer = train_tokenizer([t.question + "\n" + t.options_block() for t in tasks], vocab_size=1024)
    cfg = load_config(TrainConfig, None, smoke_config(out, args.tiny))
    estimated = None
    layers = None
    if not args.tiny:
        if args.layers == "auto":
            budget = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 64 * GiB
            layers, estimated = layers_that_fit(tokenizer, cfg, budget)
        else:
            layers = int(args.layers)
    config = model_config(tokenizer, layers, args.tiny)
    import transformers

    with torch.device(device):
        model = transformers.Qwen2_5_VLForConditionalGeneration(config)  # fp32 master weights
    enable_gradient_checkpointing(model)
    processor = image_processor_for("qwen2_5_vl", max_pixels=1003520)
    backend = FirstTurnZooms(HFQwenBackend(model, tokenizer, processor, "qwen2_5_vl", compute_dtype=torch.bfloat16))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:,.0f}M parameters, {config.text_config.num_hidden_layers} decoder layers "
          f"(7B: 28), fp32 master weights computing in bfloat16, on {device}; built in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    trained = []
    real_scoring = backend.real.sequence_logprobs

    def counting(batch, temperature=1.0):
        trained.append(sum(len(t.prompt_ids) + len(t.response_ids) for t in batch)
                       if not isinstance(batch, dict) else int(batch["attention_mask"].sum()))
        return real_scoring(batch, temperature=temperature)

    backend.real.sequence_logprobs = counting
    trainer = RLTrainer(cfg, backend_factory=lambda _: backend, verifier=BrightnessVerifier(), tasks=tasks)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps = []
    for _ in range(args.steps):
        gen0, trained0 = backend.generated, sum(trained)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        s0 = time.perf_counter()
        metrics = trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - s0
        gen, tr = backend.generated - gen0, sum(trained) - trained0
        steps.append({"step_s": dt, "rollout_s": metrics.get("rollout_s"), "update_s": metrics.get("update_s"),
                      "generated_tokens": gen, "trained_tokens": tr,
                      "generated_tok_per_s": gen / metrics["rollout_s"] if metrics.get("rollout_s") else None,
                      "trained_tok_per_s": tr / metrics["update_s"] if metrics.get("update_s") else None,
                      "skipped_update": metrics.get("skipped_update")})
        print(f"step {len(steps)}: {dt:.1f} s (rollout {metrics.get('rollout_s', 0):.1f} s, update "
              f"{metrics.get('update_s', 0):.1f} s), {gen} generated + {tr} trained tokens", flush=True)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "params": n_params, "decoder_layers": config.text_config.num_hidden_layers,
              "peak_allocated_gib": peak / GiB if peak else None,
              "estimated_peak_gib": estimated / GiB if estimated else None, "steps": steps,
              "total_s": time.perf_counter() - t0}
    if peak:
        print(f"peak memory: {peak / GiB:.1f} GiB allocated"
              + (f" (estimate {estimated / GiB:.1f} GiB)" if estimated else ""))
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoke.json").write_text(json.dumps(result, indent=2))
    print(f"total {result['total_s']:.0f} s; results in {out / 'smoke.json'}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
