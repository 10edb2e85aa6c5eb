"""`mapo demo --seeds`: seed lists, one folder per seed, and the table built from each run's own outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mapo.train import demo_seeds
from mapo.train.config import ConfigError
from mapo.train.demo import DemoConfig


@pytest.mark.parametrize("text, want", [("0-4", [0, 1, 2, 3, 4]), ("3", [3]), ("0,2,7", [0, 2, 7]),
                                        ("1-2, 5", [1, 2, 5]), ("2,2,1-2", [2, 1])])
def test_parse_seeds(text, want):
    assert demo_seeds.parse_seeds(text) == want


@pytest.mark.parametrize("text", ["", "a", "4-1", "1-", "-2", "1;2"])
def test_bad_seed_lists_say_how_to_write_them(text):
    with pytest.raises(ConfigError, match="0-4, 0,2,7 or 3"):
        demo_seeds.parse_seeds(text)


def test_each_seed_gets_its_own_folder_and_only_its_seed_changes():
    cfg = DemoConfig(out_dir="runs/demo")
    one = demo_seeds.seed_config(cfg, 3)
    assert (one.seed, one.out_dir) == (3, str(Path("runs/demo_seeds/seed3")))
    assert one.model_dump(exclude={"seed", "out_dir"}) == cfg.model_dump(exclude={"seed", "out_dir"})
    assert demo_seeds.seed_config(cfg, cfg.seed) == cfg  # `mapo demo`'s own run is the sweep's for its seed


def _summary(sft_acc, rl_acc, minutes=9.0):
    return {"evaluation": {"SFT": {"accuracy": sft_acc, "crop-hit rate": 0.3},
                           "SFT + RL (MAPO)": {"accuracy": rl_acc, "crop-hit rate": 0.4}},
            "minutes": minutes, "stage_seconds": {"rl": 300.0}}


def test_a_row_takes_val_from_the_learning_curve_and_test_from_the_demo_table():
    records = [{"step": 0, "eval/accuracy": 0.5}, {"step": 1, "accuracy": 0.3}, {"step": 10, "eval/accuracy": 0.6},
               {"step": 20, "eval/accuracy": 0.62}]
    row = demo_seeds.seed_row(4, _summary(0.48, 0.55), records, {"grounding": {"held_out_hit_rate": 0.6,
                                                                             "steps": 800}})
    assert row["sft_val_accuracy"] == 0.5 and row["rl_val_accuracy"] == 0.62 and row["grounding_hit"] == 0.6
    assert row["grounding_steps"] == 800
    assert (row["sft_test_accuracy"], row["rl_test_accuracy"], row["rl_crop_hit"]) == (0.48, 0.55, 0.4)
    # no periodic evaluation: no val figures, not a wrong one
    bare = demo_seeds.seed_row(4, _summary(0.48, 0.55), [{"step": 1, "accuracy": 0.3}])
    assert bare["sft_val_accuracy"] is None and bare["rl_val_accuracy"] is None and bare["grounding_hit"] is None


def test_the_table_counts_the_seeds_that_reach_the_bar_and_shows_the_worst():
    rows = [demo_seeds.seed_row(s, _summary(0.4, 0.5), [{"eval/accuracy": 0.4}, {"eval/accuracy": acc}])
            for s, acc in enumerate([0.6, 0.44, 0.5])]
    header, body = demo_seeds.table(rows)
    assert header[-1] == "RL val >= 0.45"
    assert [r[-1] for r in body[:3]] == ["yes", "no", "yes"]
    assert body[3][0] == "mean ± 95% CI" and body[3][-1] == "2 of 3"
    assert body[3][header.index("RL val acc")].startswith("0.51 ± ")
    assert body[4][0] == "worst seed" and body[4][header.index("RL val acc")] == "0.44"


def test_the_table_shows_the_steps_grounding_took_and_the_most_as_the_worst():
    rows = [demo_seeds.seed_row(s, _summary(0.4, 0.5), [{"eval/accuracy": 0.4}, {"eval/accuracy": 0.5}],
                                {"grounding": {"held_out_hit_rate": 0.8, "steps": steps}})
            for s, steps in enumerate([400, 800, 500])]
    header, body = demo_seeds.table(rows)
    col = header.index("grounding steps")
    assert [r[col] for r in body[:3]] == ["400", "800", "500"] and body[4][col] == "800"


def test_the_wall_time_column_counts_only_runs_that_built_every_step():
    built = {**_summary(0.4, 0.5, minutes=7.3), "stage_seconds": {"model": 200.0, "rl": 100.0}}
    reused = {**_summary(0.4, 0.5, minutes=0.2), "stage_seconds": {"model": None, "rl": 100.0}}
    rows = [demo_seeds.seed_row(s, summary, [{"eval/accuracy": 0.4}, {"eval/accuracy": 0.5}])
            for s, summary in enumerate([built, {**built, "minutes": 9.1}, reused])]
    assert [r["wall_minutes"] for r in rows] == [7.3, 9.1, None]
    header, body = demo_seeds.table(rows)
    col = header.index("wall minutes")
    assert [r[col] for r in body[:3]] == ["7.3", "9.1", "—"] and body[4][col] == "9.1"  # the slowest is the worst


def test_a_seed_that_started_from_the_packaged_model_says_so():
    """Its wall time is the demo's from its first built step on (the packaged steps were copied in, not built)."""
    installed = {**_summary(0.4, 0.5, minutes=5.1), "stage_seconds": {"model": 0.1, "rl": 100.0},
                 "packaged": {"model": 595.4, "verifier": 217.5}}
    built = {**_summary(0.4, 0.5, minutes=17.9), "stage_seconds": {"model": 595.0, "rl": 100.0}}
    rows = [demo_seeds.seed_row(s, summary, [{"eval/accuracy": 0.4}, {"eval/accuracy": 0.5}])
            for s, summary in enumerate([installed, built])]
    assert rows[0]["packaged"] == ["model", "verifier"] and rows[1]["packaged"] == []
    assert [r["wall_minutes"] for r in rows] == [5.1, 17.9]
    _, body = demo_seeds.table(rows)
    assert [r[0] for r in body[:2]] == ["0 (packaged)", "1"]


def test_run_seeds_runs_the_demo_per_seed_and_writes_the_table(monkeypatch, tmp_path):
    ran = []

    def fake_demo(cfg):
        ran.append((cfg.seed, cfg.out_dir))
        rl = Path(cfg.out_dir) / "rl"
        rl.mkdir(parents=True)
        rl.joinpath("metrics.jsonl").write_text(
            "\n".join(json.dumps({"step": s, "eval/accuracy": a}) for s, a in [(0, 0.5), (20, 0.4 + cfg.seed / 10)]))
        return _summary(0.5, 0.6)

    monkeypatch.setattr(demo_seeds, "run_demo", fake_demo)
    out = demo_seeds.run_seeds(DemoConfig(out_dir=str(tmp_path / "d")), [0, 1])
    assert ran == [(0, str(tmp_path / "d")), (1, str(tmp_path / "d_seeds" / "seed1"))]
    assert [r["rl_val_accuracy"] for r in out["rows"]] == [0.4, 0.5]
    assert json.loads((tmp_path / "d_seeds" / "summary.json").read_text())["seeds"] == [0, 1]
    md = (tmp_path / "d_seeds" / "summary.md").read_text()
    assert "| 0 | — | — | 0.50 | 0.40 |" in md and "1 of 2" in md
