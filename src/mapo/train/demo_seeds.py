"""`mapo demo --seeds 0-4`: the whole demo once per seed, each in its own folder, then one table. Does the recipe
work on every seed (world, verifier, model, SFT and RL all change with it), or only on the one the README shows?

Each seed's run is an ordinary demo, reused when already built: the config's own seed in ``out_dir`` (what
`mapo demo` built there), every other seed in ``<out_dir>_seeds/seed<N>``. The table and its JSON go to
``<out_dir>_seeds/summary.{md,json}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mapo.report.run_report import print_table
from mapo.train.compare import markdown_table
from mapo.train.config import ConfigError
from mapo.train.demo import DemoConfig, run_demo
from mapo.train.metrics_log import read_metrics
from mapo.train.stamps import built_seconds
from mapo.train.summary import finite, mean_ci95, pm

#: The bar issue 20 sets for every seed: greedy val accuracy after SFT + RL (4 options: chance is 0.25).
TARGET_VAL_ACCURACY = 0.45

#: Table columns: header, key of a seed's row, decimals shown.
COLUMNS = (("grounding steps", "grounding_steps", 0), ("grounding hit", "grounding_hit", 2),
           ("SFT val acc", "sft_val_accuracy", 2), ("RL val acc", "rl_val_accuracy", 2),
           ("SFT test acc", "sft_test_accuracy", 2), ("RL test acc", "rl_test_accuracy", 2),
           ("SFT crop-hit", "sft_crop_hit", 2), ("RL crop-hit", "rl_crop_hit", 2), ("step minutes", "step_minutes", 2),
           ("wall minutes", "wall_minutes", 1))

#: Columns where the worst seed has the most, not the least.
MOST_IS_WORST = ("grounding_steps", "wall_minutes")

#: A demo's step folders; their stamps record how long each took to build (`mapo.train.stamps.built_seconds`).
STEP_DIRS = ("world", "verifier", "model", "sft", "rl", "eval/sft", "eval/rl")


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,7"`` -> [0, 2, 7]; ``"3"`` -> [3]."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ConfigError(f"--seeds {text!r}: give seeds as 0-4, 0,2,7 or 3 (ranges low-high)")
        lo = int(m.group(1))
        seeds.extend(range(lo, int(m.group(2) or lo) + 1))
    return list(dict.fromkeys(seeds))


def sweep_dir(cfg: DemoConfig) -> Path:
    return Path(f"{cfg.out_dir.rstrip('/')}_seeds")


def seed_config(cfg: DemoConfig, seed: int) -> DemoConfig:
    """``cfg`` with ``seed``, in ``out_dir`` when it is the config's own seed (so `mapo demo`'s run counts),
    else in ``<out_dir>_seeds/seed<N>``."""
    if seed == cfg.seed:
        return cfg
    return cfg.model_copy(update={"seed": seed, "out_dir": str(sweep_dir(cfg) / f"seed{seed}")})


def seed_row(seed: int, summary: dict[str, Any], rl_records: list[dict[str, Any]],
             model_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """One seed's row from its demo summary (test split), its RL metrics (the val-split learning curve: the
    first evaluation is the SFT model, the last the final RL model) and its tiny model's warm-up record
    (``mapo_model.json``: the grounding warm-up's held-out hit rate, the step that fails on some seeds)."""
    evals = [r["eval/accuracy"] for r in rl_records if finite([r.get("eval/accuracy")])]
    ev = summary.get("evaluation", {})
    sft, rl = ev.get("SFT", {}), ev.get("SFT + RL (MAPO)", {})
    grounding = (model_info or {}).get("grounding") or {}
    return {"seed": seed, "grounding_steps": grounding.get("steps"), "grounding_hit": grounding.get("held_out_hit_rate"),
            "sft_val_accuracy": evals[0] if len(evals) > 1 else None,
            "rl_val_accuracy": evals[-1] if evals else None,
            "sft_test_accuracy": sft.get("accuracy"), "rl_test_accuracy": rl.get("accuracy"),
            "sft_crop_hit": sft.get("crop-hit rate"), "rl_crop_hit": rl.get("crop-hit rate"),
            "step_minutes": None, "wall_minutes": wall_minutes(summary),
            "stage_seconds": summary.get("stage_seconds", {}), "packaged": sorted(summary.get("packaged") or {})}


def wall_minutes(summary: dict[str, Any]) -> float | None:
    """The demo's wall time when this run built every step (what a newcomer waits; a step installed from the
    package counts, with the seconds of its copy); None when it reused one (a reused step takes no time, so the
    figure would not be the demo's)."""
    stages = summary.get("stage_seconds") or {}
    built = bool(stages) and all(v is not None for v in stages.values())
    return summary.get("minutes") if built else None


def step_minutes(out_dir: Path) -> float | None:
    """The minutes its steps took when they were built (summed: with ``parallel`` two of them overlap the rest,
    so the wall time was less), from their stamps; None when a stamp does not record it."""
    seconds = [built_seconds(out_dir / d) for d in STEP_DIRS]
    return sum(seconds) / 60 if all(s is not None for s in seconds) else None


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one per seed, then the mean ± 95% CI over seeds and the worst seed."""
    header = ["seed", *[h for h, _, _ in COLUMNS], f"RL val >= {TARGET_VAL_ACCURACY}"]

    def cell(v: Any, digits: int) -> str:
        return f"{v:.{digits}f}" if finite([v]) else "—"

    # a seed whose steps were installed from the package (mapo.train.packaged): its wall time is the demo's from
    # the first step it built on (RL, for seed 0 of the default recipe)
    out = [[str(r["seed"]) + (" (packaged)" if r.get("packaged") else ""),
            *[cell(r.get(k), d) for _, k, d in COLUMNS], _meets(r["rl_val_accuracy"])] for r in rows]
    if len(rows) > 1:
        out.append(["mean ± 95% CI", *[pm(*mean_ci95([r.get(k) for r in rows]), digits=d) for _, k, d in COLUMNS],
                    f"{sum(_meets(r['rl_val_accuracy']) == 'yes' for r in rows)} of {len(rows)}"])
        # the worst seed is the one lowest on every column, except the steps grounding needed and the wall time
        worst = [(max if k in MOST_IS_WORST else min)(finite([r.get(k) for r in rows]), default=float("nan"))
                 for _, k, _ in COLUMNS]
        out.append(["worst seed", *[cell(v, d) for v, (_, _, d) in zip(worst, COLUMNS)], ""])
    return header, out


def _meets(v: Any) -> str:
    return "—" if not finite([v]) else ("yes" if v >= TARGET_VAL_ACCURACY else "no")


def run_seeds(cfg: DemoConfig, seeds: list[int]) -> dict[str, Any]:
    """The demo for each of ``seeds`` in turn, then the table (printed and written); returns the summary."""
    rows = []
    for seed in seeds:
        scfg = seed_config(cfg, seed)
        summary = run_demo(scfg)
        rl_dir, model_json = Path(scfg.out_dir) / "rl", Path(scfg.out_dir) / "model" / "mapo_model.json"
        row = seed_row(seed, summary, read_metrics(rl_dir) if (rl_dir / "metrics.jsonl").exists() else [],
                       json.loads(model_json.read_text()) if model_json.is_file() else None)
        row["step_minutes"] = step_minutes(Path(scfg.out_dir))
        rows.append(row)
    header, body = table(rows)
    out = sweep_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    result = {"seeds": seeds, "rows": rows, "target_val_accuracy": TARGET_VAL_ACCURACY}
    (out / "summary.json").write_text(json.dumps(result, indent=1))
    (out / "summary.md").write_text(markdown_table(header, body) + "\n")
    print_table(f"mapo demo, seeds {', '.join(map(str, seeds))} (val: greedy, 100 tasks; test: the demo's table)",
                header, body)
    return result
