import math

import pytest

from mapo.train.compare import CompareConfig, markdown_table, run_config, summarise, table_rows


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
    assert rows[1][8] == "0.50"
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
