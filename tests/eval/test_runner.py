import json

import pytest
import torch

from mapo.data.benchmarks import iter_benchmark
from mapo.eval.records import ResultsFile
from mapo.eval.runner import EvalConfig, run_evaluation

ORDERS = [[0, 1, 2, 3], [1, 0, 2, 3], [1, 2, 0, 3], [1, 2, 3, 0]]  # truth at A, B, C, D


@pytest.fixture
def vstar(make_vstar):
    return make_vstar([("direct_attributes", f"img{i}", ["red", "blue", "green", "white"], order, [8, 8, 16, 16])
                       for i, order in enumerate(ORDERS)])


def run(engine, root, out, **cfg):
    done = ResultsFile(out / "results.jsonl").finished_ids()
    return run_evaluation(engine, iter_benchmark("vstar", root, skip=done), out, bench="vstar",
                          cfg=EvalConfig(**cfg), progress=False)


def test_always_A_scores_a_quarter_on_shuffled_vstar(engine_kit, vstar, tmp_path):
    engine = engine_kit.FakeEngine(lambda task, g: ["<think>guess</think><answer>A</answer>"])
    s = run(engine, vstar, tmp_path / "out")
    assert s["accuracy"] == pytest.approx(0.25)


def test_right_option_text_scores_all(engine_kit, vstar, tmp_path):
    engine = engine_kit.FakeEngine(lambda task, g: [f"<answer>It is {task.answer_text}.</answer>"])
    s = run(engine, vstar, tmp_path / "out")
    assert s["accuracy"] == 1.0 and s["per_category"] == {"direct_attributes": 1.0}


def test_zoom_on_target_vs_off_target(engine_kit, vstar, tmp_path):
    def policy(task, g):  # sample 0 zooms on the target (8,8)-(24,24); sample 1 zooms at a corner
        box = [4, 4, 30, 30] if g == 0 else [40, 30, 64, 48]
        return [engine_kit.zoom_text(box, "the red thing"), f"<answer>{task.answer}</answer>"]

    s = run(engine_kit.FakeEngine(policy), vstar, tmp_path / "out", k=2)
    assert s["k"] == 2 and s["accuracy"] == 1.0
    assert s["boxes"]["hit_rate"] == pytest.approx(0.5)
    assert s["boxes"]["gap"] == pytest.approx(0.5)  # every answer right; half of them zoomed elsewhere
    iou_on = (16 * 16) / (26 * 26)
    assert s["boxes"]["mean_iou"] == pytest.approx(iou_on / 2)
    assert s["tools"]["tool_call_rate"] == 1.0 and s["tools"]["valid_call_rate"] == 1.0
    rec = ResultsFile(tmp_path / "out" / "results.jsonl").read()[0]
    turn = rec["samples"][0]["turns"][0]
    assert turn["claim"] == "the red thing" and turn["hit"] is True and (tmp_path / "out" / turn["crop"]).is_file()
    assert (tmp_path / "out" / rec["image"]).is_file()


def test_resume_after_interruption_matches_uninterrupted(engine_kit, vstar, tmp_path):
    def policy(task, g):
        return [f"<answer>{'A' if task.id in ('0', '2') else task.answer}</answer>"]

    full = run(engine_kit.FakeEngine(policy), vstar, tmp_path / "full", batch_items=1)
    interrupted = engine_kit.FakeEngine(policy, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        run(interrupted, vstar, tmp_path / "resumed", batch_items=1)
    assert len(ResultsFile(tmp_path / "resumed" / "results.jsonl").read()) == 2
    # a torn half-written line from the kill must not break the resume
    with (tmp_path / "resumed" / "results.jsonl").open("a") as fh:
        fh.write('{"id": "3", "sampl')
    second = engine_kit.FakeEngine(policy)
    resumed = run(second, vstar, tmp_path / "resumed", batch_items=1)
    assert second.seen == ["2", "3"]  # finished items are skipped, the torn one is redone
    for key in ("accuracy", "pass_at_k", "per_category", "n_items", "tools"):
        assert resumed[key] == full[key]
    assert resumed["accuracy"] == pytest.approx(0.75)  # item 2 (truth C) answered A


def test_limit_counts_resumed_items(engine_kit, vstar, tmp_path):
    engine = engine_kit.FakeEngine(lambda t, g: ["<answer>A</answer>"])
    run(engine, vstar, tmp_path / "o", limit=1)
    run(engine, vstar, tmp_path / "o", limit=3)
    assert engine.seen == ["0", "1", "2"]


def test_failed_items_are_recorded_and_the_run_continues(engine_kit, make_vstar, tmp_path):
    root = make_vstar([("direct_attributes", n, ["a", "b"], [0, 1], [0, 0, 4, 4]) for n in ["x", "bad", "y", "z"]],
                      corrupt={"bad"})
    engine = engine_kit.FakeEngine(lambda t, g: ["<answer>A</answer>"], fail_ids={"2"})
    s = run(engine, root, tmp_path / "o", batch_items=4)
    by_id = {r["id"]: r for r in ResultsFile(tmp_path / "o" / "results.jsonl").read()}
    assert "corrupt" in by_id["1"]["error"] and "backend exploded" in by_id["2"]["error"]
    assert by_id["0"]["samples"][0]["correct"] and by_id["3"]["samples"][0]["correct"]
    assert s["n_errors"] == 2 and s["accuracy"] == pytest.approx(0.5)


class StubVerifier:
    """Scores 0.9 when the label names the colour of the crop's centre pixel, else 0.1."""

    def score(self, texts, images):
        names = {(200, 30, 30): "red"}
        out = []
        for text, im in zip(texts, images):
            px = im.getpixel((im.width // 2, im.height // 2))
            near = min(names, key=lambda c: sum(abs(a - b) for a, b in zip(c, px)))
            out.append(0.9 if names[near] in text else 0.1)
        return torch.tensor(out)


def test_alignment_scores_when_a_verifier_is_given(engine_kit, vstar, tmp_path):
    def policy(task, g):
        return [engine_kit.zoom_text([0, 0, 20, 20], "red" if g == 0 else "blue"), "<answer>A</answer>"]

    s = run_evaluation(engine_kit.FakeEngine(policy), iter_benchmark("vstar", vstar), tmp_path / "o", bench="vstar",
                       cfg=EvalConfig(k=2), verifier=StubVerifier(), progress=False)
    assert s["alignment"]["mean"] == pytest.approx(0.5) and s["alignment"]["n_scored"] == 8
    # item 0 (truth at A) is right: both its samples; others wrong
    assert s["alignment"]["correct"] == pytest.approx(0.5)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["alignment"]["mean"] == pytest.approx(0.5)


def test_vstar_label_that_contradicts_the_annotation_is_reported(engine_kit, vstar, tmp_path):
    path = vstar / "test_questions.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[1]["label"] = "C"  # the JSON says "red" (at B) is right
    path.write_text("\n".join(json.dumps(r) for r in rows))
    s = run(engine_kit.FakeEngine(lambda t, g: ["<answer>A</answer>"]), vstar, tmp_path / "o")
    assert s["label_mismatches"] == ["1"]
