"""Mixed precision as large policies are trained: ``model.dtype: bfloat16`` is the compute dtype, the weights
and AdamW state stay fp32, so an lr-1e-6 update is not rounded away (issue #17)."""

from __future__ import annotations

import pytest
import torch

from mapo.train.config import TrainConfig, load_config
from mapo.train.rl import RLTrainer, load_backend


def _cfg(tmp_path, model_dir, *overrides):
    return load_config(TrainConfig, None, [
        f"model.path={model_dir}", f"run.out_dir={tmp_path / 'run'}", "run.total_steps=3", "run.save_every=3",
        "run.progress=false", "run.tensorboard=false", "rollout.group_size=3", "rollout.prompts_per_step=2",
        "rollout.protocol.max_turns=2", "rollout.protocol.image_max_pixels=12544",
        "rollout.protocol.crop_max_pixels=12544", "rollout.protocol.max_new_tokens_per_turn=64",
        "rollout.protocol.max_response_tokens=300", "algorithm.mini_batch_groups=2",
        "algorithm.recompute_old_logprobs=true", "algorithm.skip_zero_adv_groups=false", "optim.lr=1e-6",
        "grad_variance.enabled=false", *overrides])


def _three_steps(tmp_path, model_dir, dtype, world_tasks, stub_verifier, scripted_over, *overrides):
    """Trainable weights (fp32 copies) before and after 3 RL steps with the trainer's own loader."""
    cfg = _cfg(tmp_path / dtype, model_dir, f"model.dtype={dtype}", *overrides)
    trainer = RLTrainer(cfg, backend_factory=lambda p: scripted_over(load_backend(p, cfg)),
                        verifier=stub_verifier(), tasks=world_tasks)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    before = torch.cat([p.detach().float().reshape(-1).clone() for p in params])
    trainer.train()
    after = torch.cat([p.detach().float().reshape(-1) for p in params])
    return before, after, trainer


@pytest.mark.slow
def test_bf16_compute_keeps_fp32_master_weights_so_small_updates_land(tmp_path, tiny_model_dir, world_tasks,
                                                                      stub_verifier, scripted_over):
    b16_before, b16_after, trainer = _three_steps(tmp_path, tiny_model_dir, "bfloat16", world_tasks,
                                                  stub_verifier, scripted_over)
    changed = (b16_after != b16_before).float().mean().item()
    assert changed >= 0.90, f"only {changed:.1%} of the trainable weights changed in 3 steps at lr 1e-6"
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights
    state = trainer.optimizer.state[next(p for p in trainer.model.parameters() if p.requires_grad)]
    assert state["exp_avg"].dtype == torch.float32

    f32_before, f32_after, _ = _three_steps(tmp_path, tiny_model_dir, "float32", world_tasks, stub_verifier,
                                            scripted_over)
    assert torch.equal(f32_before, b16_before)  # same starting point
    cos = torch.nn.functional.cosine_similarity(b16_after - b16_before, f32_after - f32_before, dim=0).item()
    print(f"bf16 compute: {changed:.1%} of trainable weights changed, cosine to fp32 update {cos:.4f}")
    assert cos >= 0.99, f"bf16-compute update direction differs from fp32's: cosine {cos:.4f}"

    # the final model is written in the compute dtype; it loads for evaluation as it is
    import json

    final = tmp_path / "bfloat16" / "run" / "final"
    assert json.loads((final / "config.json").read_text())["dtype"] == "bfloat16"


def test_forwards_run_in_the_compute_dtype(tiny_model_dir):
    from mapo.models.hf_qwen import load_policy

    backend = load_policy(tiny_model_dir, dtype="bfloat16", master_weights=True)
    assert backend.model.dtype == torch.float32 and backend.compute_dtype == torch.bfloat16
    seen = []
    hook = backend.model.lm_head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    ids = torch.tensor([[1, 2, 3, 4]])
    with backend.autocast():
        backend.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    hook.remove()
    assert seen == [torch.bfloat16]
    plain = load_policy(tiny_model_dir, dtype="bfloat16")  # inference: weights in bf16, nothing to autocast
    assert plain.model.dtype == torch.bfloat16 and plain.compute_dtype is None


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir, world_tasks, scripted_over, tmp_path):
    """Checkpointing only trades compute for memory: the loss gradient is the same."""
    from mapo.agent.protocol import ProtocolConfig
    from mapo.agent.rollout import RolloutEngine
    from mapo.models.hf_qwen import load_policy
    from mapo.models.precision import enable_gradient_checkpointing

    torch.manual_seed(0)
    proto = ProtocolConfig(max_turns=2, image_max_pixels=12544, crop_max_pixels=12544,
                           max_new_tokens_per_turn=48, max_response_tokens=200)
    trajs = RolloutEngine(scripted_over(load_policy(tiny_model_dir)), None, proto).run(world_tasks[:2], 1)
    grads = []
    for checkpointing in (False, True):
        backend = load_policy(tiny_model_dir)
        if checkpointing:
            enable_gradient_checkpointing(backend.model)
        backend.model.train()
        lp, _ = backend.sequence_logprobs(trajs)
        lp.sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in backend.model.parameters() if p.grad is not None]))
    assert backend.model.is_gradient_checkpointing
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fast", [True, False])
def test_the_trainers_loader_passes_model_fast_generation_on(fast, tmp_path, tiny_model_dir):
    cfg = _cfg(tmp_path, tiny_model_dir, f"model.fast_generation={str(fast).lower()}")
    backend = load_backend(tiny_model_dir, cfg)
    assert backend.inplace_cache is backend.grouped_attention is backend.lean_decode is fast
