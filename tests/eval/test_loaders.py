import json

import pytest

from mapo.data.benchmarks import BenchmarkFormatError, ItemError, iter_benchmark, load_benchmark
from mapo.data.benchmarks.mme_realworld import parse_options
from mapo.data.benchmarks.vstar import parse_question_text
from mapo.data.task import Box


def test_vstar_uses_shuffled_label_and_boxes(make_vstar):
    root = make_vstar([
        ("direct_attributes", "sa_1", ["red", "blue", "green", "white"], [2, 0, 3, 1], [5, 6, 10, 12]),
        ("relative_position", "sa_2", ["left", "right"], [1, 0], [1, 2, 3, 4]),
    ])
    errors = []
    tasks = load_benchmark("vstar", root, errors=errors)
    assert errors == []
    t1, t2 = tasks
    # JSON order puts the truth first; the jsonl shuffles it: the truth "red" sits at B.
    assert t1.options == ["green", "red", "white", "blue"] and t1.answer == "B" and t1.answer_text == "red"
    assert t1.targets == [Box(5, 6, 15, 18)] and t1.target_names == ["obj sa_1"]
    assert t1.category == "direct_attributes" and t1.question == "What about sa_1?"
    assert t1.extra["label_matches_annotation"] is True
    assert (t2.answer, t2.answer_text, t2.category) == ("B", "left", "relative_position")
    assert t1.image.size == (64, 48)


def test_vstar_answers_are_not_all_A(make_vstar):
    items = [("direct_attributes", f"n{i}", ["w", "x", "y", "z"], order, [0, 0, 4, 4])
             for i, order in enumerate([[0, 1, 2, 3], [1, 0, 2, 3], [1, 2, 0, 3], [1, 2, 3, 0]])]
    assert [t.answer for t in load_benchmark("vstar", make_vstar(items))] == ["A", "B", "C", "D"]


def test_vstar_without_questions_file_refuses(tmp_path):
    (tmp_path / "direct_attributes").mkdir()
    with pytest.raises(BenchmarkFormatError, match="shuffled"):
        load_benchmark("vstar", tmp_path)


def test_vstar_corrupt_image_and_escaping_path_are_item_errors(make_vstar):
    root = make_vstar([("direct_attributes", "ok", ["a", "b"], [0, 1], [0, 0, 1, 1]),
                       ("direct_attributes", "bad", ["a", "b"], [0, 1], [0, 0, 1, 1])], corrupt={"bad"})
    rows = [json.loads(x) for x in (root / "test_questions.jsonl").read_text().splitlines()]
    rows.append({**rows[0], "question_id": 7, "image": "../../etc/passwd.jpg"})
    rows.append({**rows[0], "question_id": 8, "image": "/etc/hosts.jpg"})
    (root / "test_questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    items = list(iter_benchmark("vstar", root))
    assert [type(i).__name__ for i in items] == ["Task", "ItemError", "ItemError", "ItemError"]
    assert "corrupt or truncated" in items[1].message
    assert "escapes the dataset root" in items[2].message
    assert "must be relative" in items[3].message


def test_vstar_decompression_bomb_names_the_limit(make_vstar):
    root = make_vstar([("direct_attributes", "big", ["a", "b"], [0, 1], [0, 0, 1, 1])])
    (item,) = iter_benchmark("vstar", root, max_decode_pixels=1000)
    assert isinstance(item, ItemError)
    assert "1,000 px" in item.message and "--max-decode-pixels" in item.message


def test_parse_question_text():
    q, opts = parse_question_text("Is the cup left?\nSecond line\n(A) yes\n(B) no\nAnswer directly.")
    assert q == "Is the cup left?\nSecond line" and opts == ["yes", "no"]


def hr_rows(files):
    img = files.b64(files.image_bytes())
    rows = []
    for i, (ans, cat, cyc) in enumerate([("A", "FSP", "cycle1"), ("C", "FCP", "cycle1"),
                                          ("B", "FSP", "cycle2"), ("D", "FCP", "cycle2")]):
        rows.append({"index": i, "question": f"q{i}?", "answer": ans, "category": cat, "A": "a", "B": "b",
                     "C": "c", "D": "d", "cycle_category": cyc, "image": img})
    return rows


@pytest.mark.parametrize("suffix", [".tsv", ".parquet"])
def test_hrbench_formats(files, tmp_path, suffix):
    path = files.write_table(tmp_path / f"hr_bench_4k{suffix}", hr_rows(files))
    tasks = load_benchmark("hrbench4k", path)
    assert [t.id for t in tasks] == ["0", "1", "2", "3"]
    assert [t.answer for t in tasks] == ["A", "C", "B", "D"]
    assert [t.extra["cycle_category"] for t in tasks] == ["cycle1", "cycle1", "cycle2", "cycle2"]
    assert tasks[0].options == ["a", "b", "c", "d"] and tasks[0].category == "FSP"
    assert tasks[0].image.size == (40, 30)


def test_hrbench_image_references_and_corrupt_rows(files, tmp_path):
    rows = hr_rows(files)
    rows[0]["image"] = "2"        # VLMEvalKit: a short cell is the index of the row holding the image
    rows[1]["image"] = files.b64(b"not an image at all")
    rows[3]["image"] = "99"       # no row 99: not a reference, and not an image either
    path = files.write_table(tmp_path / "hr.tsv", rows)
    items = {i.id: i for i in iter_benchmark("hrbench", path)}
    assert items["0"].image.size == (40, 30)
    assert isinstance(items["1"], ItemError) and "corrupt" in items["1"].message
    assert isinstance(items["3"], ItemError) and "row 3" in items["3"].message
    assert sorted(items) == ["0", "1", "2", "3"]


def test_hrbench_wrong_file_names_missing_columns(files, tmp_path):
    path = files.write_table(tmp_path / "x.tsv", [{"index": 0, "question": "q"}])
    with pytest.raises(BenchmarkFormatError, match="missing column"):
        load_benchmark("hrbench", path)


def mme_rows(files, image_key):
    img = files.b64(files.image_bytes(fmt="PNG"))
    return [
        {"index": 10, "question": "How many cars?", "multi-choice options":
            ["(A) 1", "(B) 2", "(C) 3", "(D) 4", "(E) This image doesn't feature cars"], "answer": "E",
         "category": "Perception/Monitoring/counting", "l2-category": "Monitoring", image_key: img},
        {"index": 11, "question": "Which sign?", "multi-choice options": ["(A) stop", "(B) yield"],
         "answer": "B", "category": "Reasoning/Driving/sign", "l2-category": "Driving", image_key: img},
    ]


def test_mme_realworld_tsv_with_stringified_options(files, tmp_path):
    rows = mme_rows(files, "image")
    for r in rows:
        r["multi-choice options"] = str(r["multi-choice options"])
    tasks = load_benchmark("mme_realworld_lite", files.write_table(tmp_path / "mme.tsv", rows))
    assert tasks[0].options[-1] == "This image doesn't feature cars" and tasks[0].answer == "E"
    assert tasks[0].extra == {"l2_category": "Monitoring", "task_type": "Perception"}
    assert tasks[1].options == ["stop", "yield"]


def test_mme_realworld_parquet_bytes_column(files, tmp_path):
    tasks = load_benchmark("mme-realworld", files.write_table(tmp_path / "mme.parquet", mme_rows(files, "bytes")))
    assert [t.id for t in tasks] == ["10", "11"] and len(tasks[0].options) == 5


def test_parse_options_never_evaluates_code():
    with pytest.raises(ValueError):
        parse_options("__import__('os').system('true')")
    with pytest.raises(ValueError, match="labelled"):
        parse_options(["(B) x", "(A) y"])


def test_unknown_benchmark_lists_names(tmp_path):
    with pytest.raises(BenchmarkFormatError, match="vstar"):
        load_benchmark("nope", tmp_path)


def test_count_items_when_cheap(make_vstar, files, tmp_path):
    from mapo.data.benchmarks import count_items

    root = make_vstar([("direct_attributes", n, ["a", "b"], [0, 1], [0, 0, 1, 1]) for n in "xyz"])
    assert count_items("vstar", root) == 3
    assert count_items("hrbench", files.write_table(tmp_path / "h.parquet", hr_rows(files))) == 4
    assert count_items("hrbench", files.write_table(tmp_path / "h.tsv", hr_rows(files))) is None
