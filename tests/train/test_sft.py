import pytest
import torch

from mapo.models.hf_qwen import load_policy
from mapo.train.config import SFTConfig, load_config
from mapo.train.metrics_log import read_metrics
from mapo.train.sft import expert_rollouts, nll_loss, run_sft, sft_batches


def test_nll_counts_only_assistant_tokens():
    lp = torch.tensor([[-1.0, -2.0, -4.0], [-8.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 0, 1], [1, 0, 0]])
    nll, n = nll_loss(lp, mask)
    assert nll.item() == 13.0 and n.item() == 3


def test_batches_cover_each_epoch_once():
    b = sft_batches(10, 4, 2.0, seed=3)
    assert len(b) == 5
    flat = [i for batch in b for i in batch]
    assert sorted(flat[:10]) == list(range(10))
    assert b == sft_batches(10, 4, 2.0, seed=3) and b != sft_batches(10, 4, 2.0, seed=4)


def test_expert_sequences_come_from_the_protocol(tiny_model_dir, world_tasks):
    backend = load_policy(tiny_model_dir)
    proto = {"max_new_tokens_per_turn": 200, "max_response_tokens": 800}
    trajs, records = expert_rollouts(world_tasks, backend, proto, {}, seed=0, progress=False)
    assert len(trajs) == len(world_tasks)
    for traj, rec, task in zip(trajs, records, world_tasks):
        assert traj.task is task
        generated = backend.decode(traj.response_ids[traj.response_mask.bool()].tolist())
        for text in rec.turns:
            assert text.strip() in generated
        observed = traj.response_ids[~traj.response_mask.bool()]
        assert (observed == backend.image_token_id).sum() > 0 or not rec.boxes  # crops are masked out
        assert traj.answer is not None


def _cfg(tmp_path, model_dir, **extra):
    return load_config(SFTConfig, None, [
        f"model.path={model_dir}", f"out_dir={tmp_path}", "epochs=2", "batch_size=3", "micro_batch_size=2",
        "progress=false", "save_every=2", "optim.lr=5e-3", "optim.warmup_steps=1",
        "protocol.max_new_tokens_per_turn=200", "protocol.max_response_tokens=800",
        "protocol.image_max_pixels=12544", "protocol.crop_max_pixels=12544"])


@pytest.mark.slow
def test_sft_learns_and_resumes_exactly(tmp_path, tiny_model_dir, world_tasks):
    cfg = _cfg(tmp_path / "a", tiny_model_dir)
    final = run_sft(cfg, tasks=world_tasks)
    losses = [r["loss"] for r in read_metrics(cfg.out_dir)]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0]
    part = _cfg(tmp_path / "b", tiny_model_dir)
    run_sft(part, tasks=world_tasks, stop_after=3)  # killed after step 3 (last checkpoint: step 2)
    resumed = run_sft(part, tasks=world_tasks, resume=True)
    assert [r["step"] for r in read_metrics(part.out_dir)] == list(range(1, 5))
    a, b = load_policy(final).model.state_dict(), load_policy(resumed).model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_sft_with_a_frozen_vision_tower_leaves_the_tower_as_it_was(tmp_path, tiny_model_dir, world_tasks):
    from mapo.models.freeze import vision_tower_parameters

    cfg = _cfg(tmp_path, tiny_model_dir)
    cfg.model.freeze_vision_tower = True
    cfg.epochs = 1
    start, final = load_policy(tiny_model_dir).model, load_policy(run_sft(cfg, tasks=world_tasks)).model
    assert all(torch.equal(a, b) for a, b in zip(vision_tower_parameters(start), vision_tower_parameters(final)))
    before, after = start.state_dict(), final.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("merger" in k for k in changed) and any("language_model" in k for k in changed)
