"""Steps packaged with mapo: the demo's tiny base policy, its verifier and its cold-start SFT model, built for seed 0
of the default recipe, so that `mapo demo` starts at RL the way a real run starts from a downloaded checkpoint,
instead of spending ~13 minutes of a 2-core machine building them first (~2.5 of them SFT).

An asset is the output folder of a demo step (``model``, ``verifier`` or ``sft``; without SFT's intermediate
``checkpoints/``) as the step wrote it, with its stamp
(fingerprint of the step's inputs, the inputs, the seconds it took to build) as ``stamp.json``. The demo installs
one only where the fingerprint equals the one of the step it is about to run: the same recipe, the same seed, the
same world; any other config builds the step as before. ``scripts/package_demo_models.py`` rebuilds the assets
(it builds the steps whose assets are stale, or all of them with ``--rebuild``, then packages what it built), and
tests/train/test_packaged.py fails when the recipe changes and they go stale.
"""

from __future__ import annotations

import json
import platform
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from mapo.train.side import usable_cpus
from mapo.train.stamps import STAMP, fingerprint, mark_done

#: The stamp inside an asset (not hidden: package data globs skip dot-files).
ASSET_STAMP = "stamp.json"

#: The demo steps that can be packaged, in the order the demo runs them.
STEPS = ("model", "verifier", "sft")

#: What a packaged step leaves out: hidden files (its stamp travels as ``ASSET_STAMP``) and SFT's intermediate
#: checkpoints (resuming an interrupted build; a finished step's ``final/`` is what later steps read).
LEFT_OUT = (".*", "checkpoints")


def assets_root() -> Path:
    """Where the packaged assets live: ``mapo/assets/demo/seed<N>/<step>/``."""
    return Path(str(resources.files("mapo") / "assets" / "demo"))


def asset(step: str, seed: int, root: Path | None = None) -> Path | None:
    """The packaged folder of ``step`` for ``seed``, or None when mapo ships none."""
    path = (root or assets_root()) / f"seed{seed}" / step
    return path if (path / ASSET_STAMP).is_file() else None


def asset_stamp(path: Path) -> dict[str, Any]:
    """The stamp an asset was built with (``fingerprint``, ``inputs``, ``seconds``)."""
    return json.loads((Path(path) / ASSET_STAMP).read_text())


def matches(path: Path | None, inputs: dict[str, Any]) -> bool:
    """Whether the asset at ``path`` was built from exactly these step ``inputs``."""
    if path is None:
        return False
    try:
        return asset_stamp(path).get("fingerprint") == fingerprint(inputs)
    except (OSError, json.JSONDecodeError):
        return False


def install(path: Path, out: Path, inputs: dict[str, Any]) -> None:
    """Copy the asset at ``path`` into the step folder ``out`` and stamp it done for ``inputs`` (marked
    ``packaged``, with the seconds its build took). Copied beside ``out`` first and renamed into place, so an
    interrupted copy never leaves a folder that looks finished."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}-packaged")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(path, tmp, ignore=shutil.ignore_patterns(ASSET_STAMP))
    mark_done(tmp, inputs, asset_stamp(path).get("seconds"), packaged=True)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def was_packaged(out: Path) -> bool:
    """Whether the step folder ``out`` was installed from a packaged asset (rather than built here)."""
    try:
        return bool(json.loads((Path(out) / STAMP).read_text()).get("packaged"))
    except (OSError, json.JSONDecodeError):
        return False


def package(built: Path, dest: Path) -> dict[str, Any]:
    """Make ``dest`` an asset of the finished step folder ``built`` (its files and its stamp); returns the stamp.
    ``built`` must have been built here, not installed from an asset: an asset is a build's record."""
    built, dest = Path(built), Path(dest)
    stamp_path = built / STAMP
    if not stamp_path.is_file():
        raise FileNotFoundError(f"{built}: no {STAMP}; only a finished demo step can be packaged (run `mapo demo "
                                "--set packaged=false` first)")
    stamp = json.loads(stamp_path.read_text())
    if stamp.get("packaged"):
        raise ValueError(f"{built} was installed from a packaged asset, not built: run `mapo demo --set "
                         "packaged=false` into a fresh out_dir and package that")
    stamp["built_on"] = built_on()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(built, dest, ignore=shutil.ignore_patterns(*LEFT_OUT))
    (dest / ASSET_STAMP).write_text(json.dumps(stamp, indent=1, default=str) + "\n")
    return stamp


def built_on() -> str:
    """The machine and libraries packaging happens on (the script builds the steps there too), as the install
    log quotes them: the build's seconds mean little without them."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{usable_cpus()} CPUs ({cpu}), torch {torch.__version__}, transformers {transformers.__version__}"
