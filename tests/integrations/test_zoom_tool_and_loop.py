"""The zoom tool and the score-carrying path on a tiny image: tool -> agent loop -> batch -> estimator."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("cachetools", reason="verl's agent loop needs the verl extra's cachetools/fastapi/uvicorn")
pytest.importorskip("uvicorn")

from omegaconf import OmegaConf
from verl import DataProto
from verl.experimental.agent_loop.tool_agent_loop import AgentData
from verl.experimental.agent_loop.tool_parser import FunctionCall

from mapo.core.advantages import get_advantage
from mapo.core.semantic import pad_turn_scores
from mapo.integrations.verl.agent_loop import MapoToolAgentLoop
from mapo.integrations.verl.turns import TURNS_KEY
from mapo.integrations.verl.zoom_tool import RECORD_KEY, MapoZoomTool

sys.path.insert(0, str(Path(__file__).resolve().parent / "verl_cpu_fixtures"))
from redness_tool import RednessVerifier as FixtureRedness


class RednessVerifier(FixtureRedness):
    """The end-to-end runs' stand-in verifier (the crop's red fraction for "red ..." labels, its negation
    otherwise), recording what it was asked to score."""

    def __init__(self):
        self.calls = []

    def score(self, texts, images):
        self.calls.append((list(texts), [im.size for im in images]))
        return super().score(texts, images)


def _image() -> Image.Image:
    """A 200x120 grey image with a red 40x40 square at (150, 60)-(190, 100)."""
    im = Image.new("RGB", (200, 120), (128, 128, 128))
    im.paste((255, 0, 0), (150, 60, 190, 100))
    return im


def _agent_data(image: Image.Image) -> AgentData:
    data = AgentData(messages=[], image_data=[image], video_data=None, audio_data=None, mm_processor_kwargs=None,
                     metrics={}, request_id="r", tools_kwargs={})
    data.assistant_turns = 1
    return data


def _tool(cfg=None) -> MapoZoomTool:
    tool = MapoZoomTool(cfg or {"zoom": {"crop_max_pixels": 56 * 56, "min_side": 28}})
    tool.verifier = RednessVerifier()
    return tool


def _loop(tool: MapoZoomTool) -> MapoToolAgentLoop:
    # Only the state _call_tool reads; the full constructor needs a model server.
    loop = object.__new__(MapoToolAgentLoop)
    loop.tools = {tool.name: tool}
    loop.max_tool_response_length = 1000
    loop.tool_response_truncate_side = "middle"
    return loop


def _call(loop, data, **arguments):
    call = FunctionCall(name="image_zoom_in_tool", arguments=json.dumps(arguments))
    return asyncio.run(loop._call_tool(call, {}, data))


def test_tool_crops_the_box_and_scores_the_label_on_the_crop():
    tool, data = _tool(), _agent_data(_image())
    response, reward, metrics = asyncio.run(
        tool.execute("i", {"bbox_2d": [150, 60, 190, 100], "label": "red square"}, agent_data=data))
    record = metrics[RECORD_KEY]
    assert record["ok"] and record["box"] == [150, 60, 190, 100]
    assert reward == pytest.approx(1.0) and record["score"] == reward
    assert tool.verifier.calls == [(["red square"], [(40, 40)])]  # scored on the original-resolution crop
    shown = response.image[0]
    assert shown.width % 28 == 0 and shown.height % 28 == 0 and shown.width * shown.height <= 56 * 56


def test_tool_reports_an_unusable_box_to_the_model():
    tool, data = _tool(), _agent_data(_image())
    response, _, metrics = asyncio.run(
        tool.execute("i", {"bbox_2d": [500, 500, 600, 600], "label": "red"}, agent_data=data))
    assert response.image is None and "outside the image" in response.text
    assert metrics[RECORD_KEY]["ok"] is False and tool.verifier.calls == []


def test_agent_loop_records_every_call_in_extra_fields():
    tool = _tool()
    loop, data = _loop(tool), _agent_data(_image())
    _call(loop, data, bbox_2d=[150, 60, 190, 100], label="red square")
    data.assistant_turns = 2
    _call(loop, data, bbox_2d=[0, 0, 40, 40], label="red square")  # grey: red fraction 0
    data.assistant_turns = 3
    asyncio.run(loop._call_tool(FunctionCall(name="image_zoom_in_tool", arguments="{not json"), {}, data))
    data.assistant_turns = 4
    asyncio.run(loop._call_tool(FunctionCall(name="no_such_tool", arguments="{}"), {}, data))
    recs = data.extra_fields[TURNS_KEY]
    assert [(r["turn"], r["ok"]) for r in recs] == [(0, True), (1, True), (2, False), (3, False)]
    assert recs[0]["score"] == pytest.approx(1.0) and recs[1]["score"] == pytest.approx(0.0)


def test_source_crops_inside_an_earlier_zoom():
    tool = _tool({"zoom": {"crop_max_pixels": 56 * 56, "min_side": 4}})
    loop, data = _loop(tool), _agent_data(_image())
    _call(loop, data, bbox_2d=[140, 50, 200, 110], label="red")
    data.assistant_turns = 2
    _, _, metrics = _call(loop, data, bbox_2d=[0, 0, 300, 300], label="red", source=1)
    assert metrics[RECORD_KEY]["box"] == [140, 50, 200, 110]  # clamped into view 1's region


def test_carried_scores_reach_the_estimator_through_verls_compute_advantage():
    """Two rollouts of one prompt: one zooms on the red square, one on grey; same outcome reward. The hooked
    verl compute_advantage must give the aligned zoom the higher advantage, equal to mapo.core's."""
    from verl.trainer.ppo import ray_trainer

    from mapo.integrations.verl.advantage_hook import uninstall_advantage_hook
    from mapo.integrations.verl.task_runner import prepare_trainer_process

    rows = []
    for box in ([150, 60, 190, 100], [0, 0, 40, 40]):
        loop, data = _loop(_tool()), _agent_data(_image())
        _call(loop, data, bbox_2d=box, label="red square")
        rows.append(data.extra_fields)
    column = np.empty(2, dtype=object)
    column[:] = [r.get(TURNS_KEY) for r in rows]  # how verl turns extra_fields into non_tensor_batch
    mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 0]] * 2, dtype=torch.float32)  # zoom turn, observation, answer
    rewards = torch.zeros(2, 8)
    rewards[:, 6] = 1.0
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": np.array(["p0", "p0"], dtype=object), TURNS_KEY: column})
    prepare_trainer_process(OmegaConf.create({"mapo": {"beta": 0.4, "lam": 0.95}}))
    try:
        out = ray_trainer.compute_advantage(data, adv_estimator="mapo", config=OmegaConf.create({}))
    finally:
        uninstall_advantage_hook()
    scores, turn_mask = pad_turn_scores([[1.0], [0.0]])
    expected, _ = get_advantage("mapo")(rewards, mask, np.array(["p0", "p0"]), turn_scores=scores,
                                        turn_mask=turn_mask, beta=0.4, lam=0.95)
    adv = out.batch["advantages"]
    assert torch.allclose(adv, expected, atol=1e-6)
    assert adv[0, 0] > 0 > adv[1, 0]
    assert getattr(ray_trainer, "_mapo_original_compute_advantage", None) is None


def test_verls_own_postprocess_carries_the_records_into_non_tensor_batch():
    """The agent-loop outputs go through verl's AgentLoopWorker._postprocess (the real batch builder); the
    records arrive per row in non_tensor_batch and the hooked estimator reads them from there."""
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopMetrics,
        AgentLoopWorker,
        _InternalAgentLoopOutput,
    )
    from verl.trainer.ppo import ray_trainer

    from mapo.integrations.verl.advantage_hook import uninstall_advantage_hook
    from mapo.integrations.verl.task_runner import prepare_trainer_process

    mask = [1, 1, 1, 0, 0, 1, 1, 0]  # zoom turn, observation, answer turn, padding
    outputs = []
    for box in ([150, 60, 190, 100], [0, 0, 40, 40], None):  # aligned zoom, misaligned zoom, no zoom
        loop, data = _loop(_tool()), _agent_data(_image())
        if box is not None:
            _call(loop, data, bbox_2d=box, label="red square")
        data.extra_fields.setdefault(TURNS_KEY, [])  # what MapoToolAgentLoop.run guarantees
        prompt, response = torch.ones(1, 4, dtype=torch.long), torch.ones(1, 8, dtype=torch.long)
        outputs.append(_InternalAgentLoopOutput(
            prompt_ids=prompt, response_ids=response, input_ids=torch.cat([prompt, response], 1),
            position_ids=torch.arange(12).unsqueeze(0), response_mask=torch.tensor([mask]),
            attention_mask=torch.tensor([[1] * 4 + [1] * 7 + [0]]), reward_score=1.0, num_turns=3,
            metrics=AgentLoopMetrics(), extra_fields=dict(data.extra_fields)))
    worker = object.__new__(AgentLoopWorker)
    worker.reward_loop_worker_handles = None
    batch = AgentLoopWorker._postprocess(worker, outputs)
    assert [len(r) for r in batch.non_tensor_batch[TURNS_KEY]] == [1, 1, 0]

    batch.non_tensor_batch["uid"] = np.array(["p0"] * 3, dtype=object)
    batch.batch["token_level_rewards"] = batch.batch["rm_scores"]
    prepare_trainer_process(OmegaConf.create({"mapo": {"beta": 0.4, "lam": 0.95}}))
    try:
        adv = ray_trainer.compute_advantage(batch, adv_estimator="mapo", config=OmegaConf.create({})).batch[
            "advantages"]
    finally:
        uninstall_advantage_hook()
    scores, turn_mask = pad_turn_scores([[1.0], [0.0], []])
    expected, _ = get_advantage("mapo")(batch.batch["rm_scores"], batch.batch["response_mask"],
                                        np.array(["p0"] * 3), turn_scores=scores, turn_mask=turn_mask)
    assert torch.allclose(adv, expected, atol=1e-6)
    assert adv[0, 0] > adv[1, 0] and adv[1, 0] == adv[2, 0]  # no zoom = the group's worst zoom (group_min)


class _TextTokenizer:
    """Token ids are characters: enough for verl's Hermes parser and the loop's decode."""

    def decode(self, ids, **_):
        return "".join(chr(i) for i in ids)


def test_a_tool_call_verls_parser_cannot_read_is_recorded_as_a_failed_call(monkeypatch):
    """verl's Hermes parser drops a <tool_call> with invalid JSON (and ends the episode); mapo train counts that
    turn as a failed call, so the loop records it as one. A readable call is recorded by _call_tool only, and
    a turn cut by a limit before parsing (the parser never saw it) is not recorded."""
    from verl.experimental.agent_loop.tool_agent_loop import AgentState, ToolAgentLoop
    from verl.experimental.agent_loop.tool_parser import HermesToolParser

    texts = iter(['<think>x</think><tool_call>{"name": "image_zoom_in_tool", "arguments": {bad</tool_call>',
                  '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 9, 9]}}</tool_call>',
                  "<answer>A</answer>", "<tool_call>{bad"])
    parse = [True, True, True, False]

    async def generating(self, agent_data, sampling_params, ignore_termination=False):
        # what verl's state does with the model's turn: count it, then parse it unless a limit ended the episode
        agent_data.assistant_turns += 1
        agent_data.response_ids = [ord(c) for c in next(texts)]
        if not parse[agent_data.assistant_turns - 1]:
            return AgentState.TERMINATED
        _, agent_data.tool_calls = await self.tool_parser.extract_tool_calls(agent_data.response_ids)
        agent_data.messages.append({"role": "assistant"})
        return AgentState.PROCESSING_TOOLS if agent_data.tool_calls else AgentState.TERMINATED

    monkeypatch.setattr(ToolAgentLoop, "_handle_generating_state", generating)
    loop = _loop(_tool())
    loop.tokenizer = _TextTokenizer()
    loop.tool_parser = HermesToolParser(loop.tokenizer)
    data = _agent_data(_image())
    data.assistant_turns = 0
    states = [asyncio.run(loop._handle_generating_state(data, {})) for _ in range(4)]
    assert states == [AgentState.TERMINATED, AgentState.PROCESSING_TOOLS, AgentState.TERMINATED,
                      AgentState.TERMINATED]
    assert data.extra_fields[TURNS_KEY] == [{"turn": 0, "score": 0.0, "ok": False, "box": None}]
