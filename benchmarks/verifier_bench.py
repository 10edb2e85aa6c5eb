"""Verifier throughput: (label, crop) pairs scored per second, cold (empty cache) and cached (same pairs again).

    .venv/bin/python benchmarks/verifier_bench.py [--path DIR] [--pairs 256] [--batch-size 64]

Without ``--path`` an untrained embedded verifier of the default architecture is used (speed does not depend
on the weights). Pairs are world crops with captions, as the trainer sends them: one per tool turn.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path


def run(quick: bool = False, path: Path | None = None, pairs: int = 256, batch_size: int = 64) -> dict:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=None, help="trained verifier directory (embedded backend)")
    parser.add_argument("--pairs", type=int, default=256, help="pairs per call")
    parser.add_argument("--batch-size", type=int, default=64, help="VerifierConfig.batch_size")
    args = parser.parse_args()
    r = run(path=args.path, pairs=args.pairs, batch_size=args.batch_size)
    print(f"verifier_bench {r['setting']}: cold={r['cold_pairs_per_s']:.0f} pairs/s "
          f"cached={r['cached_pairs_per_s']:.0f} pairs/s")


if __name__ == "__main__":
    main()
