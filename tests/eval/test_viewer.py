import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mapo.data.benchmarks import iter_benchmark
from mapo.eval.runner import EvalConfig, run_evaluation
from mapo.eval.viewer import write_viewer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_viewer.sh"


@pytest.fixture
def results(engine_kit, make_vstar, tmp_path):
    root = make_vstar([("direct_attributes", n, ["red", "blue"], order, [8, 8, 16, 16])
                       for n, order in [("hit", [0, 1]), ("miss", [1, 0]), ("broken", [0, 1])]],
                      corrupt={"broken"})

    def policy(task, g):
        box = [4, 4, 30, 30] if task.id == "0" else [40, 30, 64, 48]
        return [engine_kit.zoom_text(box, "a <b>red</b> square"), "<answer>A</answer>"]

    out = tmp_path / "res"
    run_evaluation(engine_kit.FakeEngine(policy), iter_benchmark("vstar", root), out, bench="vstar",
                   cfg=EvalConfig(), progress=False)
    return out


def test_viewer_page_has_boxes_crops_labels_and_filters(results):
    page = write_viewer(results)
    text = page.read_text()
    cards = re.findall(r'<div class="card (\w+)" data-correct="(\d)" data-wrong="(\d)" data-missed="(\d)" '
                       r'data-failed="(\d)"', text)
    assert cards == [("correct", "1", "0", "0", "0"), ("wrong", "0", "1", "1", "0"), ("failed", "0", "0", "0", "1")]
    assert text.count("<rect") == 4  # per drawn item: one target box + one zoom box
    assert "a &lt;b&gt;red&lt;/b&gt; square" in text and "<b>red</b> square" not in text  # escaped
    for src in re.findall(r'(?:src|href)="([^"]+\.jpg)"', text):
        assert (page.parent / src).is_file()
    for f in ["correct", "wrong", "missed", "failed"]:
        assert f'data-f="{f}"' in text


def test_viewer_can_embed_images(results, tmp_path):
    page = write_viewer(results, tmp_path / "elsewhere" / "v.html", embed=True)
    assert "data:image/jpeg;base64," in page.read_text() and 'src="media/' not in page.read_text()


def test_viewer_without_results_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="mapo eval"):
        write_viewer(tmp_path)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_screenshot_in_headless_chromium(results, tmp_path):
    png = tmp_path / "shot.png"
    mapo = Path(sys.executable).parent / "mapo"  # the environment running the tests, wherever it lives
    env = {**os.environ, **({"MAPO": str(mapo)} if mapo.is_file() else {})}
    proc = subprocess.run([str(SCRIPT), str(results), str(png)], capture_output=True, text=True, timeout=120,
                          check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    shot = Image.open(png).convert("RGB")
    assert shot.size == (1280, 900)
    colors = shot.getcolors(1 << 20)
    assert colors and len(colors) > 50  # a rendered page, not a blank canvas
