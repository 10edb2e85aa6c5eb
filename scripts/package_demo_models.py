"""Rebuild the demo's packaged tiny model and verifier (src/mapo/assets/demo/seed<N>/), the ones `mapo demo`
installs instead of building them (mapo.train.packaged).

    python scripts/package_demo_models.py                 # seed 0 of configs/demo.yaml, built in runs/package
    python scripts/package_demo_models.py --run runs/demo_scratch --seed 0

It runs the demo's preparation (world, model, verifier, SFT) with ``packaged=false`` into ``--run`` (a folder
that already holds them, built from this recipe, is reused: its stamps say so), then copies the model and the
verifier with their stamps into the package. Run it when tests/train/test_packaged.py says the assets are stale
(the recipe of the model or verifier changed); on the 2-core machine the build takes ~10-15 minutes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mapo.train import packaged
from mapo.train.config import load_config
from mapo.train.demo import DemoConfig, prepare

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, default=Path("runs/package"),
                        help="out_dir of the build (reused when it already holds this recipe's steps)")
    parser.add_argument("--assets", type=Path, default=packaged.assets_root(),
                        help="the package's asset folder (default: the installed mapo's, the checkout's src/ in "
                             "an editable install)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(DemoConfig, CONFIG).model_copy(update={"seed": args.seed, "out_dir": str(args.run),
                                                            "packaged": False})
    prepare(cfg)
    for step in packaged.STEPS:
        stamp = packaged.package(args.run / step, args.assets / f"seed{args.seed}" / step)
        print(f"{step}: packaged {args.run / step} -> {args.assets / f'seed{args.seed}' / step} "
              f"(fingerprint {stamp['fingerprint']}, built in {stamp.get('seconds')} s)")


if __name__ == "__main__":
    main()
