"""When does the demo's grounding warm-up take on a seed, and what moves that step? (docs/results.md sections 14-15)

Builds the seed's world and its tiny model up to the grounding warm-up as the demo does (``init_model`` with 0
grounding steps: tokenizer, LM warm-up, vision warm-up; the demo's config, one process), then trains copies of
it on the demo's where-question grounding, each with its own optimizer settings, measuring the held-out hit
rate on the val split's targets every 100 steps, and at the end the same hit rate on 100 train targets (does
the model learn the training boxes, or the rule?). Run it alone, at one thread, for comparable curves:

    OMP_NUM_THREADS=1 python scripts/grounding_probe.py --seed 1 --out runs/gprobe/s1 \
        --variant control --variant wd1:weight_decay=1.0 --variant lr6:lr=6e-3 [--max-steps 800] [--stop-at 0.8]

Each variant is ``name[:key=value,...]`` with keys ``lr`` (default 3e-3, the demo's), ``weight_decay``
(default 0, the demo's) and ``order_seed`` (the batches' order; default the seed, as the demo's run 0 draws).
``--tiny heads=8`` builds the tiny model with other sizes (``mapo.models.zoo.SIZES["tiny"]`` keys; use a new
``--out``: the pre-grounding model is reused when present). Prints one JSON line per variant; the models stay in
``OUT/g_<name>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from mapo.data.expert import ExpertConfig
from mapo.data.parquet import load_tasks
from mapo.data.world.export import write_world
from mapo.models import warmup, zoo
from mapo.models.world_warmup import _val_tasks, grounding_examples, train_split, world_grounding_checks
from mapo.train.demo import DemoConfig, deep_merge, init_model, recipe


def variant(text: str) -> tuple[str, dict[str, float]]:
    name, _, rest = text.partition(":")
    options = {k: float(v) for k, v in (kv.split("=", 1) for kv in rest.split(",") if kv)}
    unknown = set(options) - {"lr", "weight_decay", "order_seed"}
    if unknown:
        raise SystemExit(f"--variant {text!r}: unknown key(s) {sorted(unknown)}; use lr, weight_decay, order_seed")
    return name, options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variant", action="append", default=[],
                    help="name[:lr=...,weight_decay=...,order_seed=...] (repeatable)")
    ap.add_argument("--max-steps", type=int, default=800)
    ap.add_argument("--stop-at", type=float, default=0.8, help="stop a variant at this held-out hit rate")
    ap.add_argument("--tiny", default="", help="key=value[,...] overriding the tiny model's sizes, e.g. heads=8")
    args = ap.parse_args()
    for kv in filter(None, args.tiny.split(",")):
        key, _, value = kv.partition("=")
        if key not in zoo.SIZES["tiny"]:
            raise SystemExit(f"--tiny {kv!r}: not one of {sorted(zoo.SIZES['tiny'])}")
        zoo.SIZES["tiny"][key] = int(value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    variants = [variant(v) for v in args.variant or ["control"]]
    cfg = DemoConfig.model_validate(deep_merge(recipe(), {"seed": args.seed}))
    world, pre = args.out / "world", args.out / "pre"
    if not (world / "val.parquet").is_file():
        write_world(cfg.world.model_copy(update={"seed": args.seed}), world)
    if not (pre / "mapo_model.json").is_file():
        init_model(world, pre, cfg.model_copy(update={"grounding_steps": 0}))
    expert = ExpertConfig.model_validate(cfg.sft.expert)
    pixels = cfg.protocol.image_max_pixels
    held_out = world_grounding_checks(_val_tasks(world))
    train = world_grounding_checks(load_tasks(train_split(world), limit=100))
    for name, options in variants:
        out = args.out / f"g_{name}"
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(pre, out)
        examples = grounding_examples(out, world, expert=expert, max_pixels=pixels, seed=args.seed, flips=True)
        start = time.time()
        order = int(options.get("order_seed", args.seed))
        done = warmup.warm_up_grounding(out, examples, steps=100, seed=order, max_pixels=pixels,
                                        freeze_vision_tower=cfg.freeze_vision_tower, lr=options.get("lr", 3e-3),
                                        weight_decay=options.get("weight_decay", 0.0), held_out=held_out,
                                        target_hit_rate=args.stop_at, max_steps=args.max_steps, progress=False)
        train_hit = warmup._grounding_hit_rate(warmup.load_policy(out), train, pixels)
        print(json.dumps({"seed": args.seed, "variant": name, **options, "held_out_curve": done["held_out_curve"],
                          "train_hit_at_end": train_hit, "seconds": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main()
