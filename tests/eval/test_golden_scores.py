"""Loader -> runner -> summary on fixture files, against hand-computed accuracies."""

import pytest
from rich.console import Console

from mapo.data.benchmarks import ItemError, iter_benchmark
from mapo.eval.runner import EvalConfig, run_evaluation
from mapo.eval.table import print_summary


def test_hrbench_file_scored_with_cycle_averaging(engine_kit, files, tmp_path):
    img = files.b64(files.image_bytes())
    # (answer, category, cycle, model's answer): cycle1 FSP 1/2, FCP 1/1 -> all 2/3; cycle2 FSP 1/1, FCP 0/3 -> 1/4
    plan = [("A", "FSP", "c1", "A"), ("B", "FSP", "c1", "C"), ("C", "FCP", "c1", "C"),
            ("D", "FSP", "c2", "D"), ("A", "FCP", "c2", "B"), ("B", "FCP", "c2", "A"), ("C", "FCP", "c2", "A")]
    rows = [{"index": i, "question": "q?", "answer": a, "category": c, "A": "w", "B": "x", "C": "y", "D": "z",
             "cycle_category": cy, "image": img} for i, (a, c, cy, _) in enumerate(plan)]
    path = files.write_table(tmp_path / "hr_bench_8k.tsv", rows)
    answers = {str(i): p[3] for i, p in enumerate(plan)}
    engine = engine_kit.FakeEngine(lambda task, g: [f"<answer>({answers[task.id]})</answer>"])
    s = run_evaluation(engine, iter_benchmark("hrbench8k", path), tmp_path / "o", bench="hrbench8k",
                       cfg=EvalConfig(save_media=False), progress=False)
    assert s["hrbench"]["cycles"]["c1"] == pytest.approx({"all": 2 / 3, "FSP": 0.5, "FCP": 1.0})
    assert s["hrbench"]["average"] == pytest.approx({"all": 11 / 24, "FSP": 0.75, "FCP": 0.5})
    assert s["accuracy"] == pytest.approx(11 / 24)
    console = Console(record=True, width=120)
    print_summary(s, console)
    text = console.export_text()
    assert "HR-Bench cycle average" in text and "45.8" in text


def test_mme_realworld_five_options_by_l2_category(engine_kit, files, tmp_path):
    img = files.b64(files.image_bytes(fmt="PNG"))
    opts = ["(A) one", "(B) two", "(C) three", "(D) four", "(E) This image doesn't feature the object"]
    plan = [("E", "Monitoring", "E"), ("A", "Monitoring", "one"), ("B", "OCR", "(A) or (B)"), ("C", "OCR", "C")]
    rows = [{"index": 100 + i, "question": "q", "multi-choice options": str(opts), "answer": a,
             "category": f"Perception/{l2}/x", "l2-category": l2, "image": img} for i, (a, l2, _) in enumerate(plan)]
    path = files.write_table(tmp_path / "mme.tsv", rows)
    said = {str(100 + i): p[2] for i, p in enumerate(plan)}
    engine = engine_kit.FakeEngine(lambda task, g: [f"<answer>{said[task.id]}</answer>"])
    s = run_evaluation(engine, iter_benchmark("mme_realworld_lite", path), tmp_path / "o", bench="mme",
                       cfg=EvalConfig(save_media=False), progress=False)
    # "one" picks A by option text; "(A) or (B)" is a hedge -> wrong
    assert s["accuracy"] == pytest.approx(3 / 4)
    assert s["per_group"]["l2_category"] == pytest.approx({"Monitoring": 1.0, "OCR": 0.5})
    assert s["per_group"]["task_type"] == {"Perception": 0.75}


def test_deepeyes_training_parquet_rows(files, tmp_path):
    good = {"prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content":
            "<image>\nWhat colour is the car?\n(A) red\n(B) blue"}],
            "images": [{"bytes": files.image_bytes()}], "data_source": "vstar",
            "reward_model": {"ground_truth": "B"}, "extra_info": {"question": "What colour is the car?\n(A) red\n"
                                                                              "(B) blue", "index": 7},
            "env_name": "visual_toolbox_v2"}
    bad = {**good, "images": [{"bytes": b"\x89PNG broken"}], "extra_info": {**good["extra_info"], "index": 8}}
    path = files.write_table(tmp_path / "deepeyes.parquet", [good, bad])
    items = list(iter_benchmark("deepeyes", path))
    task, error = items
    assert task.options == ["red", "blue"] and task.answer == "B" and task.id == "vstar-7"
    assert isinstance(error, ItemError) and error.id == "vstar-8" and "corrupt" in error.message
