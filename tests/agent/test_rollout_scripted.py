"""The rollout engine driven by the scripted backend: valid, malformed, out-of-bounds and source-chained calls;
masks, turn spans, pixel-exact crops, error observations, batching, and the image/token invariant."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.models.scripted import ScriptedBackend


def rollout(tokenizer, task, script, tasks=None, group_size=1, **cfg):
    backend = ScriptedBackend(tokenizer, script)
    cfg = {"image_max_pixels": 112 * 112, "crop_max_pixels": 56 * 56, **cfg}
    trajs = RolloutEngine(backend, None, ProtocolConfig(**cfg)).run(tasks or [task], group_size)
    return backend, trajs


@pytest.fixture
def run(tokenizer, make_task):
    return lambda script, tasks=None, group_size=1, **cfg: rollout(tokenizer, make_task(), script, tasks,
                                                                   group_size, **cfg)


def check_invariants(backend, traj):
    """What every trajectory must satisfy, whatever happened in it."""
    L = len(traj.response_ids)
    assert len(traj.response_mask) == len(traj.old_logprobs) == len(traj.token_turn) == L
    pads = int((traj.full_ids == backend.image_token_id).sum())
    assert pads == sum(backend.image_tokens(im) for im in traj.images)  # placeholders match images fed
    in_span = torch.zeros(L, dtype=torch.long)
    for i, turn in enumerate(traj.turns):
        a, b = turn.span
        assert turn.index == i and 0 <= a <= b <= L
        in_span[a:b] = 1
        assert (traj.token_turn[a:b] == i).all()
        assert backend.decode(traj.response_ids[a:b].tolist()) == turn.text
    assert torch.equal(traj.response_mask, in_span)  # 1 exactly on generated tokens
    assert (traj.token_turn[traj.response_mask == 0] == -1).all()
    assert (traj.response_ids[traj.response_mask == 0] != backend.image_token_id).sum() >= 0
    assert traj.images[0].width * traj.images[0].height <= 112 * 112
    ok_calls = [t.tool for t in traj.turns if t.tool is not None and t.tool.ok]
    shown = traj.images[1:]
    assert all(a is b.observation for a, b in zip(shown, ok_calls))


def observations(backend, traj) -> list[str]:
    """Decoded text of each run of observation (mask 0) tokens."""
    out, cur = [], []
    for tid, m in zip(traj.response_ids.tolist(), traj.response_mask.tolist()):
        if m == 0:
            cur.append(tid)
        elif cur:
            out.append(backend.decode(cur))
            cur = []
    return out + ([backend.decode(cur)] if cur else [])


def test_valid_and_source_chained_calls_crop_the_original_pixel_exactly(run, call_text, make_task):
    task = make_task()  # same pixels as the task run() uses
    script = {"t0": [call_text([100, 50, 420, 300]), call_text([200, 100, 300, 200], source=1),
                     "<think>green</think><answer>B</answer>"]}
    backend, [traj] = run(script)
    check_invariants(backend, traj)
    assert traj.stop_reason == "answer" and traj.answer == "B" and not traj.hit_turn_cap
    assert [t.parsed.kind for t in traj.turns] == ["tool_call", "tool_call", "answer"]
    first, second = traj.turns[0].tool, traj.turns[1].tool
    assert first.box_executed.as_list() == [100, 50, 420, 300]
    assert second.source == 1 and second.box_executed.as_list() == [200, 100, 300, 200]
    for r in (first, second):
        want = task.image.crop(tuple(int(v) for v in r.box_executed.as_list()))
        assert np.array_equal(np.asarray(r.crop), np.asarray(want))
    assert len(traj.images) == 3 and traj.turns[0].label == "the red circle"
    obs = observations(backend, traj)
    assert len(obs) == 2 and all("<tool_response><|vision_start|>" in o for o in obs)
    assert obs[0].startswith("<|im_end|>\n<|im_start|>user\n") and obs[0].endswith("<|im_start|>assistant\n")


def test_malformed_and_out_of_bounds_calls_get_error_observations_and_the_turn_counts(run, call_text):
    script = {"t0": ["<tool_call>{'name': 'image_zoom_in_tool'}</tool_call>",  # python dict
                     call_text([900, 700, 1200, 900]),  # entirely outside the 640x480 image
                     call_text([-40, -40, 100, 100]),  # partly outside: clamped and executed
                     "<answer>A</answer>"]}
    backend, [traj] = run(script)
    check_invariants(backend, traj)
    assert [t.parsed.kind for t in traj.turns] == ["error", "tool_call", "tool_call", "answer"]
    assert traj.turns[0].parsed.error.code == "bad_json" and traj.turns[0].tool is None
    assert not traj.turns[1].tool.ok and "outside" in traj.turns[1].tool.error
    assert traj.turns[2].tool.ok and "clamped" in traj.turns[2].tool.repairs
    assert traj.turns[2].tool.box_executed.as_list() == [0, 0, 100, 100]
    obs = observations(backend, traj)
    assert "Error:" in obs[0] and "not valid JSON" in obs[0] and "<|image_pad|>" not in obs[0]
    assert "Error:" in obs[1] and "outside" in obs[1]
    assert "<|image_pad|>" in obs[2] and len(traj.images) == 2


def test_turn_cap_ends_the_episode_and_every_call_is_recorded(run, call_text):
    backend, [traj] = run(lambda ctx: call_text([10 * ctx.turn, 0, 200, 200]), max_turns=3)
    check_invariants(backend, traj)
    assert traj.stop_reason == "max_turns" and traj.hit_turn_cap and traj.answer is None
    assert len(traj.turns) == 3 and all(t.tool.ok for t in traj.turns)
    assert len(traj.images) == 3  # the last call is executed (its crop can be scored) but not shown


def test_generation_is_batched_across_active_trajectories(run, call_text, make_task):
    tasks = [make_task("a"), make_task("b", seed=1)]
    script = {("a", 0): ["<answer>A</answer>"], "a": [call_text([0, 0, 100, 100]), "<answer>B</answer>"],
              "b": [call_text([0, 0, 100, 100]), call_text([0, 0, 50, 50]), "<answer>C</answer>"]}
    backend, trajs = run(script, tasks, group_size=3)
    assert [(t.task.id, t.sample_index) for t in trajs] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1),
                                                               ("b", 2)]
    assert backend.calls == [6, 5, 3]  # one generate per turn over all still-active trajectories
    assert [t.answer for t in trajs] == ["A", "B", "B", "C", "C", "C"]
    for t in trajs:
        check_invariants(backend, t)


@pytest.mark.parametrize("limit", list(range(40, 400, 7)))
def test_image_tokens_match_images_under_any_token_limit(run, call_text, limit):
    """Cut at every place, including right after a tool returned an image: placeholders still match."""
    script = {"t0": [call_text([100, 50, 420, 300]), call_text([0, 0, 300, 300]), "<answer>B</answer>"]}
    backend, [traj] = run(script, max_response_tokens=limit, max_new_tokens_per_turn=64)
    check_invariants(backend, traj)
    assert len(traj.response_ids) <= limit
    if traj.stop_reason != "answer":
        assert traj.stop_reason == "max_response_tokens"


def test_token_limit_right_after_a_tool_call_drops_the_whole_observation(run, call_text, tokenizer):
    first = call_text([100, 50, 420, 300])
    n_first = len(tokenizer(first, add_special_tokens=False)["input_ids"])
    backend, [traj] = run({"t0": [first, "<answer>B</answer>"]}, max_response_tokens=n_first + 5)
    check_invariants(backend, traj)
    assert traj.stop_reason == "max_response_tokens" and traj.turns[0].tool.ok
    assert len(traj.images) == 1 and int(traj.response_mask.sum()) == len(traj.response_ids) == n_first


def test_per_turn_token_limit_truncates_the_turn(run, call_text):
    backend, [traj] = run({"t0": [call_text([0, 0, 100, 100]), "<answer>B</answer>"]},
                          max_new_tokens_per_turn=5, max_turns=2)
    check_invariants(backend, traj)
    assert traj.turns[0].truncated and traj.turns[0].span[1] - traj.turns[0].span[0] == 5
    assert traj.turns[0].parsed.kind == "error" and traj.stop_reason == "answer"


def test_trajectory_pixel_budget_turns_further_crops_into_errors(run, call_text):
    script = {"t0": [call_text([0, 0, 300, 300]), call_text([0, 0, 300, 300]), "<answer>B</answer>"]}
    _, [free] = run(script)
    cap = sum(im.width * im.height for im in free.images[:2])  # room for the task image and one crop
    backend, [traj] = run(script, trajectory_max_pixels=cap)
    check_invariants(backend, traj)
    assert traj.turns[0].tool.ok and not traj.turns[1].tool.ok and "budget" in traj.turns[1].tool.error
    assert len(traj.images) == 2


def test_description_mode_attaches_the_description_to_the_call_it_follows(run):
    call = {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 200, 200]}}
    script = {"t0": [f"<tool_call>{json.dumps(call)}</tool_call>",
                     "<description>a red circle</description><answer>B</answer>"]}
    backend, [traj] = run(script, mode="description")
    check_invariants(backend, traj)
    assert traj.turns[0].tool.ok and traj.turns[0].label is None
    assert traj.turns[0].description == "a red circle" and traj.turns[0].claim == "a red circle"
    assert traj.answer == "B"
    backend, [traj] = run(script)  # label mode: the same call lacks its label
    assert traj.turns[0].parsed.error.code == "missing_label"


def test_a_repaired_box_is_told_to_the_model_in_the_observation(run, call_text):
    """Issue #19.6: [343, 432, -50, 557] ran as [0, 432, 343, 480] and the model was never told."""
    backend, [traj] = run({"t0": [call_text([343, 432, -50, 557]), call_text([-50, -50, 99999, 99999]),
                                  call_text([10, 10, 200, 200]), "<answer>A</answer>"]})
    check_invariants(backend, traj)
    assert traj.turns[0].tool.box_executed.as_list() == [0, 432, 343, 480]
    obs = observations(backend, traj)
    assert "<|image_pad|>" in obs[0] and "[343, 432, -50, 557] was changed to [0, 432, 343, 480]" in obs[0]
    assert "swapped" in obs[0] and "clamped" in obs[0]
    assert "was changed to [0, 0, 640, 480]" in obs[1] and "swapped" not in obs[1]
    assert "Note:" not in obs[2]  # a box inside the image is not commented on


def test_the_refuse_policy_turns_a_box_that_needs_repair_into_an_error(tokenizer, make_task, call_text):
    backend, [traj] = rollout(tokenizer, make_task(), {"t0": [call_text([343, 432, -50, 557]),
                                                               call_text([10, 10, 200, 200]), "<answer>A</answer>"]},
                              box_repair="refuse")
    assert not traj.turns[0].tool.ok and "top-left corner first" in traj.turns[0].tool.error
    assert traj.turns[1].tool.ok and len(traj.images) == 2
    obs = observations(backend, traj)
    assert "Error:" in obs[0] and "<|image_pad|>" not in obs[0]
