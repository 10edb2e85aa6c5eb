import math

from mapo.report.html import table_html, write_summary
from mapo.report.plots import plot_curves, smooth
from mapo.train.metrics_log import MetricsLogger, read_metrics


def test_logger_writes_jsonl_and_tensorboard(tmp_path):
    with MetricsLogger(tmp_path, total_steps=3, progress=False) as log:
        log.log(1, {"reward": 0.5, "loss": float("nan")})
        log.log(2, {"reward": 0.7})
    recs = read_metrics(tmp_path)
    assert [r["step"] for r in recs] == [1, 2]
    assert recs[0]["loss"] is None  # NaN is not valid JSON
    assert any((tmp_path / "tensorboard").iterdir())


def test_resumed_logger_drops_steps_after_the_checkpoint(tmp_path):
    with MetricsLogger(tmp_path, total_steps=5, progress=False, tensorboard=False) as log:
        for s in (1, 2, 3):
            log.log(s, {"x": s})
    with MetricsLogger(tmp_path, total_steps=5, start_step=2, progress=False, tensorboard=False) as log:
        log.log(3, {"x": 30})
    assert [(r["step"], r["x"]) for r in read_metrics(tmp_path)] == [(1, 1), (2, 2), (3, 30)]


def test_plot_and_html(tmp_path):
    runs = {"a": [{"step": i, "acc": i / 10} for i in range(5)], "b": [{"step": i, "acc": None} for i in range(5)]}
    png = plot_curves(runs, ["acc", "absent"], tmp_path / "p.png", band={"c": [runs["a"], runs["a"]]})
    assert png is not None and png.stat().st_size > 1000
    assert plot_curves(runs, ["absent"], tmp_path / "q.png") is None
    page = write_summary(tmp_path / "index.html", title="t<", sections=[("s", table_html(["k"], [[0.12345]]))],
                         images=[png])
    text = page.read_text()
    assert "t&lt;" in text and "0.123" in text and 'src="p.png"' in text


def test_smooth():
    assert smooth([1.0, 3.0, 5.0], 2) == [1.0, 2.0, 4.0]
    assert all(math.isfinite(v) for v in smooth([0.0] * 4, 10))
