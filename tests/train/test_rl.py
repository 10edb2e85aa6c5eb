import math

import pytest
import torch

from mapo.models.hf_qwen import load_policy
from mapo.train.config import TrainConfig, load_config
from mapo.train.metrics_log import read_metrics
from mapo.train.rl import RLTrainer, sample_prompts


def _cfg(tmp_path, model_dir, *overrides):
    return load_config(TrainConfig, None, [
        f"model.path={model_dir}", f"run.out_dir={tmp_path / 'run'}", "run.total_steps=2", "run.save_every=1",
        "run.progress=false", "run.tensorboard=false", "rollout.group_size=3", "rollout.prompts_per_step=2",
        "rollout.protocol.max_turns=2", "rollout.protocol.image_max_pixels=12544",
        "rollout.protocol.crop_max_pixels=12544", "rollout.protocol.max_new_tokens_per_turn=96",
        "rollout.protocol.max_response_tokens=400", "algorithm.mini_batch_groups=1", "algorithm.ppo_epochs=1",
        "algorithm.recompute_old_logprobs=true", "algorithm.skip_zero_adv_groups=false", "optim.lr=1e-3",
        "grad_variance.num_directions=4", *overrides])


@pytest.fixture
def make_trainer(scripted_policy, stub_verifier, world_tasks):
    return lambda cfg, **kw: RLTrainer(cfg, backend_factory=scripted_policy, verifier=stub_verifier(),
                                       tasks=world_tasks, **kw)


@pytest.mark.parametrize("estimator", ["grpo", "rloo", "mapo", "mapo_turn"])
def test_two_rl_steps_end_to_end(tmp_path, tiny_model_dir, make_trainer, estimator):
    cfg = _cfg(tmp_path, tiny_model_dir, f"algorithm.estimator={estimator}")
    trainer = make_trainer(cfg)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    final = trainer.train()
    recs = read_metrics(cfg.run.out_dir)
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        assert r["skipped_update"] == 0.0
        assert r["tool_call_rate"] > 0 and 0 <= r["accuracy"] <= 1
        for key in ("reward", "alignment", "entropy", "clip_frac", "grad_norm", "grad_var", "pg_loss"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
        assert r["optimizer_steps"] == 2  # 2 groups, one per mini-batch
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert (final / "config.json").exists()
    load_policy(final)  # the saved model loads back
    # the protocol it was trained with travels with it, so `mapo eval --model final` uses the same one
    from mapo.eval.cli import _protocol

    assert _protocol(final, None, {}) == cfg.rollout.protocol


@pytest.mark.slow
def test_interrupted_then_resumed_gives_the_same_metrics(tmp_path, tiny_model_dir, make_trainer):
    full = _cfg(tmp_path / "a", tiny_model_dir)
    make_trainer(full).train()
    part = _cfg(tmp_path / "b", tiny_model_dir)
    make_trainer(part).train(stop_after=1)  # "killed" after the step-1 checkpoint
    resumed = make_trainer(part, resume=True)
    assert resumed.step == 1
    resumed.train()
    a, b = read_metrics(full.run.out_dir), read_metrics(part.run.out_dir)
    assert [r["step"] for r in b] == [1, 2]
    drop = {"rollout_s", "update_s"}
    for ra, rb in zip(a, b):
        for k in ra:
            if k not in drop:
                assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-7), (ra["step"], k)


def test_nan_reward_skips_the_update_and_a_bad_sample_is_dropped(tmp_path, tiny_model_dir, make_trainer, caplog):
    from mapo.rewards import outcome_reward

    def reward(traj):
        r, info = outcome_reward(traj.answer, traj.task)
        calls.append(1)
        if len(calls) == 13:  # first sample of step 3: a bad sample
            raise ValueError("corrupt sample")
        return (float("nan") if len(calls) <= 6 else r), info

    calls: list[int] = []
    cfg = _cfg(tmp_path, tiny_model_dir)
    trainer = make_trainer(cfg, reward_fn=reward)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with caplog.at_level("WARNING"):
        trainer.train_step()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert "update skipped" in caplog.text
    m = trainer.train_step()
    assert m.get("skipped_update") == 0.0 and m["optimizer_steps"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    with caplog.at_level("WARNING"):
        m = trainer.train_step()  # one sample's reward raises: it is logged and dropped, the rest trains
    assert m["dropped_samples"] == 1 and m["skipped_update"] == 0.0
    assert "corrupt sample" in caplog.text


def test_prompt_sampling_is_a_function_of_seed_and_step():
    a = [sample_prompts(10, s, 4, seed=0) for s in range(1, 6)]
    assert a == [sample_prompts(10, s, 4, seed=0) for s in range(1, 6)]
    first_epoch = [i for s in a[:2] for i in s] + a[2][:2]
    assert sorted(first_epoch) == list(range(10))  # every task once per epoch
    assert a != [sample_prompts(10, s, 4, seed=1) for s in range(1, 6)]


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum-norm"])
def test_the_mini_batch_gradient_does_not_depend_on_the_micro_batch_split(tmp_path, tiny_model_dir, make_trainer,
                                                                         mode):
    """token-mean over the mini-batch's tokens (verl's batch_num_tokens) and the Dr.GRPO horizon from the
    protocol's response limit: one micro-batch of 3, or 3 of 1 (each padded to its own width), give the same
    gradient. Per-micro-batch means or the padded width as the horizon made them differ."""
    grads = {}
    for micro in (1, 3):
        cfg = _cfg(tmp_path / f"m{micro}", tiny_model_dir, f"algorithm.micro_batch_size={micro}",
                   f"algorithm.loss_agg_mode={mode}", "grad_variance.enabled=false", "optim.max_grad_norm=1e9",
                   "rollout.prompts_per_step=1", "algorithm.recompute_old_logprobs=false")
        trainer = make_trainer(cfg)
        seen = []
        step = trainer.optimizer.step

        def capture(*args, _step=step, _seen=seen, _model=trainer.model, **kwargs):
            _seen.append(torch.cat([p.grad.flatten() for p in _model.parameters() if p.grad is not None]))
            return _step(*args, **kwargs)

        trainer.optimizer.step = capture
        trainer.train_step()
        assert len(seen) == 1
        grads[micro] = seen[0]
    assert grads[1].norm() > 0
    torch.testing.assert_close(grads[1], grads[3], rtol=1e-4, atol=1e-7)
