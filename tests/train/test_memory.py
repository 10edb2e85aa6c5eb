"""The pre-run memory estimate (`--dry-run`): checked against what a real tiny model allocates, and run on the
7B config from config.json alone (tests/fixtures/qwen2_5_vl_7b, written from transformers' config class)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mapo.train import memory

FIXTURE_7B = Path(__file__).parents[1] / "fixtures" / "qwen2_5_vl_7b"


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def test_estimate_matches_a_measured_small_model_within_30_percent(tmp_path, tiny_model_dir, world_tasks,
                                                                   scripted_over):
    """A model of a shape the coefficients were not measured on (hidden 256, MLP 512, 4 layers): parameters,
    fp32 gradients and AdamW state as allocated, activations as the tensors autograd saves for backward.
    (Without gradient checkpointing: under it the saved-tensor hooks do not see what checkpointing keeps.)"""
    import transformers

    from mapo.agent.protocol import ProtocolConfig
    from mapo.agent.rollout import RolloutEngine
    from mapo.models.hf_qwen import load_policy
    from mapo.models.zoo import build_tiny_model

    tok = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    small = build_tiny_model(tmp_path / "small", tok, size="small")
    backend = load_policy(small, dtype="bfloat16", master_weights=True)
    torch.manual_seed(0)
    proto = ProtocolConfig(max_turns=2, image_max_pixels=50176, crop_max_pixels=50176,
                           max_new_tokens_per_turn=64, max_response_tokens=400)
    trajs = RolloutEngine(scripted_over(backend), None, proto).run(world_tasks[:2], 2)
    params = {p.untyped_storage().data_ptr() for p in backend.model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    backend.model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lp, ent = backend.sequence_logprobs(trajs)
        (lp.sum() + ent.sum()).backward()
    opt = torch.optim.AdamW(backend.model.parameters(), lr=1e-6)
    opt.step()
    n_trainable = sum(p.numel() for p in backend.model.parameters() if p.requires_grad)
    measured_acts = sum(saved.values()) - 2 * n_trainable  # less the bf16 weight copies autocast saved
    measured = (_nbytes(backend.model.parameters()) + _nbytes(p.grad for p in backend.model.parameters())
                + _nbytes(v for st in opt.state.values() for v in st.values() if v.dim() > 0) + sum(saved.values()))

    shape = memory.model_shape(small)
    grid = [backend.image_grid(im) for t in trajs for im in t.images]
    work = memory.Workload(micro_batch=len(trajs),
                           prompt_tokens=round(sum(len(t.prompt_ids) for t in trajs) / len(trajs)),
                           response_tokens=max(len(t.response_ids) for t in trajs),
                           image_patches=round(sum(h * w for _, h, w in grid) / len(trajs)))
    est = memory.estimate(shape, work, dtype="bfloat16")
    est_acts = sum(v for k, v in est.items.items() if k.startswith("activations"))
    assert shape.n_params == sum(p.numel() for p in backend.model.parameters())
    assert est.update_peak == pytest.approx(measured, rel=0.30), (est.items, measured)
    assert est_acts == pytest.approx(measured_acts, rel=0.30), (est_acts, measured_acts)


def test_dry_run_on_the_7b_config_needs_only_config_json(tmp_path):
    from mapo.cli import app

    assert not list(FIXTURE_7B.glob("*.safetensors"))
    args = ["train", "--config", "configs/qwen2_5_vl_7b.yaml", "--dry-run", "--set", f"model.path={FIXTURE_7B}"]
    fits = CliRunner().invoke(app, args + ["--device-memory", "4096GB"])
    assert fits.exit_code == 0, fits.output
    assert "8.29B parameters" in fits.output and "meta device" in fits.output and "fits" in fits.output
    for item in ("weights (fp32 master)", "AdamW state", "gradients (fp32)", "activations: decoder layers",
                 "rollout: KV cache"):
        assert item in fits.output
    small = CliRunner().invoke(app, args + ["--device-memory", "80GB"])
    assert small.exit_code == 1 and "DOES NOT FIT" in small.output
    assert "verl" in small.output and "rollout.prompts_per_step" in small.output
    no_ckpt = CliRunner().invoke(app, ["train", "--dry-run", "--set", f"model.path={tmp_path}"])
    assert no_ckpt.exit_code != 0 and "config.json" in no_ckpt.output


def test_advice_names_the_setting_that_brings_the_run_under_the_budget():
    shape = memory.model_shape(FIXTURE_7B)
    work = memory.Workload(micro_batch=4, prompt_tokens=2000, response_tokens=8192, image_patches=20000)
    off = memory.estimate(shape, work, gradient_checkpointing=False)
    on = memory.estimate(shape, work, gradient_checkpointing=True)
    layers = lambda e: e.items["activations: decoder layers"]
    assert layers(off) > 5 * layers(on)  # checkpointing keeps one fp32 hidden vector per token per layer
    budget = (off.update_peak + on.update_peak) / 2 / (1 - memory.HEADROOM)  # fits only with checkpointing
    tips = memory.advice(shape, work, off, budget, gradient_checkpointing=False, freeze_vision_tower=False, rl=True)
    assert tips and "model.gradient_checkpointing=true" in tips[0]
    assert memory.advice(shape, work, on, budget, gradient_checkpointing=True, freeze_vision_tower=False,
                         rl=True) == []
    assert memory.parse_bytes("80GB") == 80 * memory.GiB
    with pytest.raises(ValueError, match="--device-memory 'lots'"):
        memory.parse_bytes("lots")
