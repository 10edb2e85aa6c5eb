"""semantic_claim (mapo.agent.call_scores): re-labelling a wrong zoom wins under "label", not under the others."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mapo.agent.call_scores import score_tool_calls
from mapo.agent.parser import ParsedTurn, ToolCall
from mapo.agent.trajectory import Trajectory, TurnRecord
from mapo.agent.zoom import ToolResult
from mapo.data.task import Box, Task

RED, CYAN = (220, 30, 30), (30, 220, 220)


def turn_scores(trajs, verifier, *, semantic_claim, failed_call_score=-1.0) -> list[list[float]]:
    """Each call's score as the estimators see it (failed calls at ``failed_call_score``)."""
    tensors = score_tool_calls(trajs, verifier, failed_call_score, semantic_claim).tensors
    return [[float(v) for v, m in zip(row, mask) if m] for row, mask in
            zip(tensors["turn_scores"], tensors["turn_mask"])]


class ColourVerifier:
    """1 when the text names the crop's colour (red or cyan), else 0."""

    def score(self, texts, images):
        names = {RED: "red", CYAN: "cyan"}
        return torch.tensor([1.0 if names[im.getpixel((0, 0))] in t else 0.0 for t, im in zip(texts, images)])


def _traj(label: str, crop_colour, ok: bool = True) -> Trajectory:
    task = Task(id="t", image=Image.new("RGB", (64, 64)), question="What pattern is on the red triangle?",
                answer="A", options=["checks", "x"], targets=[Box(0, 0, 8, 8)],
                target_names=["the small red triangle with checks"])
    box = Box(0, 0, 8, 8)
    tool = ToolResult(box_asked=box.as_list(), box_executed=box if ok else None,
                      crop=Image.new("RGB", (8, 8), crop_colour) if ok else None, error=None if ok else "bad")
    parsed = ParsedTurn(text="c", tool_call=ToolCall(name="image_zoom_in_tool", bbox=box.as_list(), label=label))
    turn = TurnRecord(index=0, text="c", parsed=parsed, span=(0, 1), tool=tool)
    return Trajectory(task=task, sample_index=0, prompt_ids=torch.zeros(1, dtype=torch.long), turns=[turn])


def test_relabelling_a_wrong_zoom_only_wins_under_label():
    honest_miss = _traj("the red triangle", CYAN)       # zoomed on the cyan one, label says the intent
    relabelled = _traj("the cyan triangle", CYAN)       # zoomed on the cyan one, label describes it
    on_target = _traj("the red triangle", RED)
    v = ColourVerifier()
    label = turn_scores([honest_miss, relabelled, on_target], v, semantic_claim="label")
    assert label == [[0.0], [1.0], [1.0]]               # the hack: the re-labelled miss ties the right zoom
    referent = turn_scores([honest_miss, relabelled, on_target], v, semantic_claim="referent")
    assert referent == [[0.0], [0.0], [1.0]]
    both = turn_scores([honest_miss, relabelled, on_target], v, semantic_claim="label_and_referent")
    assert both == [[0.0], [0.0], [1.0]]


def test_failed_calls_and_unknown_claims():
    failed = _traj("the red triangle", RED, ok=False)
    assert turn_scores([failed], ColourVerifier(), semantic_claim="referent", failed_call_score=-1.0) == [[-1.0]]
    with pytest.raises(ValueError, match="semantic_claim"):
        turn_scores([failed], ColourVerifier(), semantic_claim="intent")
