"""Rebuild the demo's packaged tiny model, verifier and SFT model (src/mapo/assets/demo/seed<N>/), the ones
`mapo demo` installs instead of building them (mapo.train.packaged).

    python scripts/package_demo_models.py                 # seed 0 of configs/demo.yaml, built in runs/package
    python scripts/package_demo_models.py --rebuild --run runs/package_all --seed 0

It runs the demo's preparation (world, model, verifier, SFT) into ``--run``: steps whose packaged asset is still
current are installed from it, the stale ones are built (``--rebuild``: every step is built), and a folder that
already holds a step built from this recipe is reused (its stamp says so). Then each step built here is copied
with its stamp into the package. Run it when tests/train/test_packaged.py says an asset is stale (the recipe of
that step, or of one before it, changed); on the 2-core machine building all three takes ~20 minutes, SFT alone
~3.
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
    parser.add_argument("--rebuild", action="store_true",
                        help="build every step, also those whose packaged asset is current (default: install "
                             "those, build the stale ones)")
    args = parser.parse_args()
    if args.run.is_absolute():
        parser.error(f"--run {args.run}: give a path relative to the working directory, e.g. runs/demo (SFT writes "
                     "its paths into its config.yaml, which ships with the asset)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(DemoConfig, CONFIG).model_copy(update={"seed": args.seed, "out_dir": str(args.run),
                                                            "packaged": not args.rebuild})
    prepare(cfg)
    for step in packaged.STEPS:
        if packaged.was_packaged(args.run / step):
            print(f"{step}: its packaged asset is current (installed, not built), left as it is")
            continue
        stamp = packaged.package(args.run / step, args.assets / f"seed{args.seed}" / step)
        print(f"{step}: packaged {args.run / step} -> {args.assets / f'seed{args.seed}' / step} "
              f"(fingerprint {stamp['fingerprint']}, built in {stamp.get('seconds')} s)")


if __name__ == "__main__":
    main()
