import math

import pytest

from mapo.train.compare import (
    HEADER,
    CompareConfig,
    markdown_table,
    paired_rows,
    run_config,
    summarise,
    table_rows,
)


def _run(seed, acc, grad_var, tool_rate=0.8):
    metrics = [{"step": s, "grad_var": grad_var, "grad_var_rel": grad_var / 2, "alignment": 0.1,
                "tool_call_rate": tool_rate, "format_error_rate": 0.0} for s in range(1, 11)]
    ev = {"accuracy": acc, "alignment": {"mean": 0.2}, "boxes": {"hit_rate": 0.5, "gap": 0.3},
          "tools": {"tool_call_rate": tool_rate}}
    return {"seed": seed, "metrics": metrics, "eval": ev}


def test_summary_table_from_run_records():
    runs = {"grpo": [_run(0, 0.4, 2.0), _run(1, 0.5, 2.0), _run(2, 0.6, 2.0, tool_rate=0.0)],
            "mapo": [_run(0, 0.6, 1.0), _run(1, 0.7, 1.0), _run(2, 0.8, 1.0)]}
    result = summarise(runs, CompareConfig())
    g, m = result["rows"]["grpo"], result["rows"]["mapo"]
    # mean and 95% CI half-width over 3 seeds: t(0.975, 2) * std / sqrt(3) = 4.303 * 0.1 / 1.732
    assert g["test_accuracy"][0] == pytest.approx(0.5) and g["test_accuracy"][1] == pytest.approx(0.2484, abs=1e-4)
    assert m["grad_var_ratio"] == pytest.approx(0.5) and g["grad_var_ratio"] == pytest.approx(1.0)
    assert g["collapsed"] == 1 and m["collapsed"] == 0
    rows = table_rows(result)
    assert rows[0][0] == "grpo" and rows[0][1] == "0.500 ± 0.248" and rows[0][-1] == "yes (1/3)"
    assert rows[1][HEADER.index("grad var / GRPO")] == "0.50"
    md = markdown_table(["a", "b"], [["1", "2"]])
    assert md.splitlines()[1] == "|---|---|"


def test_without_a_grpo_baseline_the_ratio_is_undefined():
    result = summarise({"mapo": [_run(0, 0.5, 1.0)]}, CompareConfig())
    assert math.isnan(result["rows"]["mapo"]["grad_var_ratio"])


def test_every_run_gets_the_same_budget(tmp_path):
    cfg = CompareConfig(out_dir=str(tmp_path), rl={"run": {"total_steps": 7}})
    a = run_config(cfg, tmp_path, "grpo", 0)
    b = run_config(cfg, tmp_path, "mapo", 1)
    assert a.run.total_steps == b.run.total_steps == 7
    assert a.rollout == b.rollout and a.optim == b.optim and a.model == b.model
    assert (a.algorithm.estimator, b.algorithm.estimator, b.seed) == ("grpo", "mapo", 1)
    assert a.run.out_dir != b.run.out_dir


def test_sft_baseline_row_and_paired_differences():
    runs = {"grpo": [_run(0, 0.40, 2.0), _run(1, 0.50, 2.0), _run(2, 0.60, 2.0)],
            "mapo": [_run(0, 0.45, 1.0), _run(1, 0.56, 1.0), _run(2, 0.64, 1.0), _run(3, 0.9, 1.0)]}
    sft = {"accuracy": 0.3, "alignment": {"mean": 0.1}, "boxes": {"hit_rate": 0.4, "gap": 0.2},
           "tools": {"tool_call_rate": 1.0}, "behaviour": {"label_drift": 0.02, "repetition_rate": 0.0}}
    result = summarise(runs, CompareConfig(), sft=sft)
    # paired over the seeds both ran (seed 3 has no GRPO partner): differences 0.05, 0.06, 0.04
    d = result["paired"]["mapo"]
    assert d["seeds"] == 3 and d["test_accuracy"][0] == pytest.approx(0.05)
    assert d["test_accuracy"][1] == pytest.approx(4.303 * 0.01 / math.sqrt(3), abs=1e-4)
    assert math.isnan(d["label_drift"][0])  # the run records carry no behaviour figures: no number invented
    assert "grpo" not in result["paired"]
    rows = table_rows(result)
    assert rows[0][:4] == ["SFT (start)", "0.300", "0.100", "0.400"] and rows[0][6] == "0.020"
    assert rows[1][0] == "grpo"
    assert result["rows"]["mapo"]["per_seed_accuracy"] == {"0": 0.45, "1": 0.56, "2": 0.64, "3": 0.9}
    paired = paired_rows(result)
    # alignment: what MAPO's semantic term pays for, scored on the test split (0.2 in every run here)
    assert paired == [["mapo", "0.050 ± 0.025", "0.000 ± 0.000", "0.000 ± 0.000", "0.000 ± 0.000", "—", "3"]]


def test_without_sft_the_table_has_no_baseline_row():
    result = summarise({"grpo": [_run(0, 0.5, 1.0)]}, CompareConfig())
    assert "sft" not in result and [r[0] for r in table_rows(result)] == ["grpo"]
