"""The suite's entry point: every benchmark's outcome (ok / skipped / error) lands in the table and the JSON,
and one failing benchmark does not stop the others."""

import json
import sys

import pytest
import run

FAKES = {
    "fake_ok": "from harness import Figure\nNAME='fake_ok'\n"
    "def run(quick=False):\n    return [Figure('fake_ok', 'm', 'ms', 1.0, 3.0, 'ref', 3.0, 'quick' if quick else 'full')]\n",
    "fake_skip": "from harness import Skip\ndef run(quick=False):\n    raise Skip('needs the moon')\n",
    "fake_error": "def run(quick=False):\n    raise RuntimeError('boom')\n",
}


@pytest.fixture
def fake_benchmarks(tmp_path, monkeypatch):
    for name, src in FAKES.items():
        (tmp_path / f"bench_{name}.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(run, "BENCHMARKS", list(FAKES))
    yield
    for name in FAKES:
        sys.modules.pop(f"bench_{name}", None)


def test_outcomes_are_recorded_and_errors_fail_the_run(fake_benchmarks, tmp_path, capsys):
    out = tmp_path / "results.json"
    code = run.main(["--quick", "--out", str(out), "--threads", "1"])
    assert code == 1  # one benchmark errored
    res = json.loads(out.read_text())
    b = res["benchmarks"]
    assert b["fake_ok"]["status"] == "ok" and b["fake_ok"]["figures"][0]["note"] == "quick"
    assert b["fake_skip"] == {**b["fake_skip"], "status": "skipped", "reason": "needs the moon"}
    assert b["fake_error"]["status"] == "error" and "boom" in b["fake_error"]["reason"]
    assert res["quick"] is True and res["machine"]["cpus_usable"] >= 1
    printed = capsys.readouterr().out
    assert "3.00x" in printed and "needs the moon" in printed


def test_only_selects_benchmarks(fake_benchmarks, tmp_path):
    out = tmp_path / "r.json"
    assert run.main(["--only", "fake_ok", "--out", str(out)]) == 0
    assert list(json.loads(out.read_text())["benchmarks"]) == ["fake_ok"]


def test_advantage_benchmark_runs_quick_and_checks_parity_with_verl(tmp_path):
    pytest.importorskip("verl")
    out = tmp_path / "r.json"
    assert run.main(["--quick", "--only", "advantages", "--out", str(out)]) == 0
    figs = json.loads(out.read_text())["benchmarks"]["advantages"]["figures"]
    assert {f["measure"] for f in figs} == {"mapo `grpo`", "mapo `mapo`", "mapo `mapo_turn`"}
    assert all(f["mapo"] > 0 and f["reference"] > 0 and f["speedup"] > 0 for f in figs)


def test_markdown_renders_saved_results(fake_benchmarks, tmp_path, capsys):
    out = tmp_path / "r.json"
    run.main(["--out", str(out)])
    capsys.readouterr()
    assert run.main(["--markdown", str(out)]) == 0
    md = capsys.readouterr().out
    assert "| fake_ok | m | 1.00 | 3.00 (ref) | ms | 3.00x | full |" in md
    assert "| fake_skip | skipped |" in md and "usable CPUs" in md


def test_isolated_benchmark_runs_in_a_fresh_interpreter(tmp_path, monkeypatch):
    import os

    (tmp_path / "bench_fake_iso.py").write_text(
        "import os\nfrom harness import Figure\nISOLATED = True\n"
        "def run(quick=False):\n"
        "    return [Figure('fake_iso', 'pid', '-', float(os.getpid()), note=os.environ.get('MAPO_BENCH_ISOLATED', ''))]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out = tmp_path / "r.json"
    try:
        assert run.main(["--only", "fake_iso", "--threads", "1", "--out", str(out)]) == 0
    finally:
        sys.modules.pop("bench_fake_iso", None)
    fig = json.loads(out.read_text())["benchmarks"]["fake_iso"]["figures"][0]
    assert fig["note"] == "1" and fig["mapo"] != os.getpid()


def test_unknown_benchmark_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        run.main(["--only", "no_such_bench", "--out", str(tmp_path / "r.json")])


def test_targets_are_checked_against_their_figures():
    def fig(measure, unit, mapo, speedup):
        return {"measure": measure, "unit": unit, "mapo": mapo, "speedup": speedup}

    results = {"benchmarks": {
        "rollout": {"status": "ok", "figures": [
            fig("batched engine vs naive loop", "gen. tokens/s", 9.0, 9.0),  # another unit: not the target's
            fig("batched engine vs naive loop", "traj/s", 7.0, 4.2),
            fig("rollout wall time / its model forward time", "x", 1.25, None)]},
        "rl_step": {"status": "skipped", "figures": [], "reason": "no TRL"}}}
    checked = {c["measure"]: c for c in run.check_targets(results)}
    assert checked["batched engine vs naive loop"]["value"] == 4.2
    assert checked["batched engine vs naive loop"]["status"] == "not met"
    assert checked["rollout wall time / its model forward time"]["status"] == "met"
    assert checked["single-turn GRPO step"]["status"] == "not measured"
    text = run.targets_text(list(checked.values()))
    assert "not met" in text and "4.20x (target >= 5x)" in text and "1.25x (target <= 1.3x)" in text
