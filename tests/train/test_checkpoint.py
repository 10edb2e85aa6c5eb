import json
import random

import numpy as np
import torch

from mapo.train.checkpoint import checkpoint_dirs, latest_checkpoint, load_checkpoint, save_checkpoint
from mapo.train.config import OptimConfig
from mapo.train.optim import build_optimizer, lr_multiplier


def _model_and_opt():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt, sched = build_optimizer(model.parameters(), OptimConfig(lr=0.1, warmup_steps=2, schedule="cosine"), 10)
    return model, opt, sched


def _train_step(model, opt, sched):
    loss = model(torch.randn(5, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_resume_restores_everything(tmp_path):
    model, opt, sched = _model_and_opt()
    _train_step(model, opt, sched)
    save = lambda d: (d.mkdir(), torch.save(model.state_dict(), d / "w.pt"))
    random.seed(5)
    np.random.seed(5)
    ck = save_checkpoint(tmp_path, 1, save_model=save, optimizer=opt, scheduler=sched, state={"x": 3})
    # continue uninterrupted
    _train_step(model, opt, sched)
    expected = ([p.detach().clone() for p in model.parameters()], random.random(), np.random.rand())

    model2, opt2, sched2 = _model_and_opt()
    loaded = load_checkpoint(ck, optimizer=opt2, scheduler=sched2)
    model2.load_state_dict(torch.load(loaded.model_dir / "w.pt"))
    assert loaded.step == 1 and loaded.state["x"] == 3
    _train_step(model2, opt2, sched2)
    for a, b in zip(expected[0], model2.parameters()):
        assert torch.equal(a, b)
    assert random.random() == expected[1] and np.random.rand() == expected[2]
    assert sched2.last_epoch == sched.last_epoch


def test_keeps_last_n_and_ignores_partial_writes(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, save_model=lambda d: d.mkdir(), keep_last=2)
    (tmp_path / ".tmp-step_00000009-1").mkdir()  # a crashed write
    (tmp_path / "step_00000010").mkdir()  # no state.json: not finished
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_00000003", "step_00000004"]
    assert json.loads((latest_checkpoint(tmp_path) / "state.json").read_text())["step"] == 4


def test_resaving_a_step_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 1, save_model=lambda d: d.mkdir(), state={"v": 1})
    save_checkpoint(tmp_path, 1, save_model=lambda d: d.mkdir(), state={"v": 2})
    assert load_checkpoint(tmp_path / "step_00000001").state["v"] == 2


def test_lr_schedule_shape():
    kw = {"warmup_steps": 4, "total_steps": 20}
    assert lr_multiplier(0, schedule="cosine", **kw) == 0.25
    assert lr_multiplier(3, schedule="cosine", **kw) == 1.0
    assert lr_multiplier(4, schedule="cosine", **kw) == 1.0
    assert abs(lr_multiplier(20, schedule="cosine", **kw)) < 1e-9
    assert lr_multiplier(12, schedule="linear", **kw) == 0.5
    assert lr_multiplier(19, schedule="constant", **kw) == 1.0
