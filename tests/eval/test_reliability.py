"""Issue #19, points 1-4: paths that escape the dataset, a failed HR-Bench item's cycle, a bad V* annotation,
and the decode limit that must also lift Pillow's own bomb limit."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mapo.data.benchmarks import ItemError, Task, iter_benchmark
from mapo.data.benchmarks.paths import UnsafePathError, resolve_image, safe_join
from mapo.data.images import ImageError, decode_image
from mapo.eval.runner import EvalConfig, run_evaluation


def _hr_rows(files, image):
    return [{"index": i, "question": "q?", "answer": "A", "category": "FSP", "A": "a", "B": "b", "C": "c",
             "D": "d", "cycle_category": f"c{i % 4 + 1}", "image": image} for i in range(8)]


@pytest.fixture
def secret(tmp_path):
    """An image outside the dataset folder: a loader must never read it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(path)
    return path


@pytest.mark.parametrize("bench,suffix", [("hrbench", ".tsv"), ("hrbench", ".parquet"),
                                          ("mme_realworld", ".tsv")])
def test_table_cells_holding_paths_outside_the_dataset_are_refused(files, tmp_path, secret, bench, suffix):
    data = tmp_path / "data"
    data.mkdir()
    (data / "inside.png").write_bytes(files.image_bytes(fmt="PNG"))
    cells = [str(secret), "../outside/secret.png", "inside.png"]
    if bench == "hrbench":
        rows = _hr_rows(files, "")[:3]
        for row, cell in zip(rows, cells):
            row["image"] = cell
    else:
        rows = [{"index": i, "question": "q", "multi-choice options": str(["(A) x", "(B) y"]), "answer": "A",
                 "category": "Perception/OCR/x", "l2-category": "OCR", "image": cell} for i, cell in enumerate(cells)]
    path = files.write_table(data / f"bench{suffix}", rows)
    items = list(iter_benchmark(bench, path))
    assert isinstance(items[0], ItemError) and "absolute" in items[0].message
    assert isinstance(items[1], ItemError) and "escapes the dataset root" in items[1].message
    assert isinstance(items[2], Task)  # a relative path inside the dataset folder is fine
    # the explicit opt-in reads an absolute path (a format that stores them), never a relative escape
    items = list(iter_benchmark(bench, path, allow_absolute_paths=True))
    assert isinstance(items[0], Task) and items[0].image.getpixel((0, 0)) == (1, 2, 3)
    assert isinstance(items[1], ItemError)


def test_deepeyes_image_paths_go_through_the_same_gate(tmp_path, secret):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": [{"role": "user", "content": "<image>\nWhat colour?"}],
             "images": [{"bytes": None, "path": p}], "data_source": "x",
             "reward_model": {"ground_truth": "red", "style": "rule"}, "extra_info": {"index": i}}
            for i, p in enumerate([str(secret), "../outside/secret.png"])]
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), data / "train.parquet")
    items = list(iter_benchmark("deepeyes", data / "train.parquet"))
    assert all(isinstance(i, ItemError) for i in items)
    assert "absolute" in items[0].message and "escapes" in items[1].message


def test_decode_image_never_reads_a_path_given_as_text(secret):
    with pytest.raises(ImageError, match="file path written as text"):
        decode_image(str(secret))
    assert decode_image(secret).size == (32, 32)  # a Path object (from safe_join) is read
    with pytest.raises(UnsafePathError):
        resolve_image(str(secret), secret.parent.parent / "data")
    assert safe_join(secret.parent, "secret.png") == secret.resolve()


def test_a_failed_hrbench_item_keeps_its_cycle(engine_kit, files, tmp_path):
    """Always-"A" on a file whose answers are all "A" but one corrupt image in cycle c1: the failed item is
    scored wrong inside c1; it used to form an extra cycle "" averaged into the headline (0.25 -> 0.20)."""
    rows = _hr_rows(files, files.b64(files.image_bytes()))
    rows[0]["image"] = files.b64(b"definitely not an image")
    path = files.write_table(tmp_path / "hr.tsv", rows)
    engine = engine_kit.FakeEngine(lambda task, g: ["<answer>A</answer>"])
    s = run_evaluation(engine, iter_benchmark("hrbench", path), tmp_path / "o", bench="hrbench",
                       cfg=EvalConfig(save_media=False), progress=False)
    assert sorted(s["hrbench"]["cycles"]) == ["c1", "c2", "c3", "c4"]
    assert s["hrbench"]["cycles"]["c1"]["all"] == pytest.approx(0.5)
    assert s["accuracy"] == pytest.approx((0.5 + 1 + 1 + 1) / 4) and s["n_errors"] == 1


@pytest.mark.parametrize("annotation", ["{not json", json.dumps({"bbox": 5}), json.dumps([1, 2]),
                                        json.dumps({"bbox": [["x", 1, 2, 3]]}), json.dumps({"options": 3})])
def test_one_bad_vstar_annotation_is_a_failed_item_not_a_crash(make_vstar, engine_kit, tmp_path, annotation):
    root = make_vstar([("direct_attributes", "ok", ["a", "b"], [0, 1], [0, 0, 1, 1]),
                       ("direct_attributes", "bad", ["a", "b"], [1, 0], [0, 0, 1, 1])])
    (root / "direct_attributes" / "bad.json").write_text(annotation)
    items = list(iter_benchmark("vstar", root))
    assert [type(i).__name__ for i in items] == ["Task", "ItemError"]
    assert "bad.json" in items[1].message and "not a valid annotation" in items[1].message
    engine = engine_kit.FakeEngine(lambda task, g: ["<answer>A</answer>"])
    s = run_evaluation(engine, iter_benchmark("vstar", root), tmp_path / "o", bench="vstar",
                       cfg=EvalConfig(save_media=False), progress=False)
    assert s["n_items"] == 2 and s["n_errors"] == 1


def test_max_decode_pixels_lifts_pillows_own_bomb_limit(monkeypatch, files):
    """Pillow refuses above 2 x Image.MAX_IMAGE_PIXELS whatever our limit said (a 20000x20000 image was
    'corrupt or truncated' at any --max-decode-pixels); scaled down here: Pillow's limit 1,000 px."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = files.image_bytes(size=(200, 100), fmt="PNG")
    assert decode_image(data, max_decode_pixels=50_000).size == (200, 100)
    with pytest.raises(ImageError, match="decode limit of 10,000 px"):
        decode_image(data, max_decode_pixels=10_000)
    assert Image.MAX_IMAGE_PIXELS == 1000  # the process-wide setting is restored
