"""Verifier: (label, crop) pairs scored per second, cold (every pair embedded) and cached (the (image hash, text)
cache hit), side by side in one run. The verifier's share of an RL step is in the ``step_breakdown`` benchmark
(measured inside a real step).

    .venv/bin/python benchmarks/bench_verifier.py [--path DIR] [--pairs 256] [--batch-size 64]

Without ``--path`` an untrained embedded verifier of the default architecture is used (speed does not depend
on the weights). Pairs are world crops with captions, as the trainer sends them: one per tool turn.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from harness import Figure, speedup_from_rates

NAME = "verifier"


def measure(quick: bool = False, path: Path | None = None, pairs: int = 256, batch_size: int = 64) -> dict:
    """Score ``pairs`` distinct (caption, crop) pairs twice; returns rates in pairs/s (``quick``: 64 pairs)."""
    import torch

    from mapo.data.world.config import WorldConfig
    from mapo.data.world.generate import generate_tasks
    from mapo.verifier import VerifierConfig, load_verifier
    from mapo.verifier.embedded import save_lit
    from mapo.verifier.lit import LiTConfig, LiTModel
    from mapo.verifier.pairs import make_pairs
    from mapo.verifier.text_tower import shared_text_encoder
    from mapo.verifier.train import TrainConfig

    n = 64 if quick else pairs
    if path is None:
        path = Path(tempfile.mkdtemp()) / "untrained"
        default = TrainConfig()  # the architecture `mapo verifier train` builds by default
        save_lit(LiTModel(LiTConfig(image_size=default.image_size, global_size=default.global_size,
                                    glimpse_size=default.glimpse_size, embed_dim=default.embed_dim)).eval(), path)
    shared_text_encoder("cpu")  # load MiniLM outside the timed region: a one-off cost per process
    tasks = generate_tasks(WorldConfig(), "val", n // 8 + 1)
    made = make_pairs(tasks, [0, 1, 2, 3, 4, 5], random.Random(0), per_task=8)
    texts, crops = made.captions[:n], made.hit[:n]
    verifier = load_verifier(VerifierConfig(backend="embedded", path=path, batch_size=batch_size))
    t = time.perf_counter()
    cold = verifier.score(texts, crops)
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    cached = verifier.score(texts, crops)
    cached_s = time.perf_counter() - t
    if not torch.equal(cold, cached):
        raise AssertionError("cached scores differ from cold scores")
    return {
        "cold_pairs_per_s": len(texts) / cold_s,
        "cached_pairs_per_s": len(texts) / cached_s,
        "pairs": len(texts),
        "distinct_texts": len(set(texts)),
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "setting": f"embedded backend, {len(texts)} world (caption, crop) pairs, batch {batch_size}, "
                   f"{torch.get_num_threads()} threads",
    }


def figures_from(result: dict) -> list[Figure]:
    """Rows from ``measure()``'s dict: every ``*pairs_per_s`` number; the cached rate is compared
    with the cold one."""
    rates = {k: float(v) for k, v in result.items() if k.endswith("pairs_per_s") and isinstance(v, (int, float))}
    if not rates:
        raise ValueError(f"measure() returned no '*pairs_per_s' figure (keys: {sorted(result)})")
    cold = next((v for k, v in rates.items() if "cold" in k), None)
    setting = str(result.get("setting", ""))
    rows = []
    for key, rate in rates.items():
        cached = "cache" in key and "cold" not in key
        rows.append(Figure(
            benchmark=NAME, measure=key.removesuffix("_pairs_per_s").replace("_", " "), unit="pairs/s", mapo=rate,
            reference=cold if cached else None, reference_name="cold (no cache)" if cached else "",
            speedup=speedup_from_rates(rate, cold) if cached and cold else None,
            note=f"benchmarks/bench_verifier.py {setting}".strip(),
            extra={k: v for k, v in result.items() if isinstance(v, (int, float, str))}))
    return rows


def run(quick: bool = False) -> list[Figure]:
    return figures_from(measure(quick=quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=None, help="trained verifier directory (embedded backend)")
    parser.add_argument("--pairs", type=int, default=256, help="pairs per call")
    parser.add_argument("--batch-size", type=int, default=64, help="VerifierConfig.batch_size")
    args = parser.parse_args()
    r = measure(path=args.path, pairs=args.pairs, batch_size=args.batch_size)
    print(f"verifier {r['setting']}: cold={r['cold_pairs_per_s']:.0f} pairs/s "
          f"cached={r['cached_pairs_per_s']:.0f} pairs/s")


if __name__ == "__main__":
    main()
