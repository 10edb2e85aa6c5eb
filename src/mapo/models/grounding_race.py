"""Grounding warm-ups that race: the same model trained on the same examples in several processes at once, each
drawing its batches in its own order, and the first to reach the bar is kept.

Why: the step at which the tiny model's grounding generalises is chaotic. It stays at chance for 300 to 1500
steps, then jumps within 100, and the step moves with the order of the batches and the last bits of the
arithmetic (docs/results.md sections 11-15). A slow seed costs minutes and can end at the cap. Two runs on two
cores turn the chance that a seed is slow from p into about p squared, for the price of one core.

The outcome is a function of the runs' held-out curves alone, never of the clock, so a race is as reproducible as
one run: ``referee`` reads the hit rates measured at the shared check steps. The runs post them to a folder
(``RaceBoard``), which works across processes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: A run that failed counts as this hit rate at every check it did not post: it never wins while a peer runs.
FAILED = -1.0


#: Checks by which each later run must beat the one before it. Run 1 starts behind (the second process trains the
#: verifier first: ~200 steps on the 2-core machine), so a strict "earliest check wins" made run 0, at the bar,
#: wait minutes for run 1 to catch up in the common case where run 0 wins anyway; with this handicap run 0 waits
#: only for run 1's checks two before its own. Run 1 is the backup for the slow seeds.
HANDICAP_CHECKS = 2


def referee(curves: Sequence[Mapping[int, float]], checks: Sequence[int], target: float,
            handicap: int = HANDICAP_CHECKS) -> int | None:
    """The index of the winning run, or None while that depends on hit rates not yet posted.

    ``curves[i]``: run i's held-out hit rate by step; ``checks``: the check steps all runs share, in order, the last
    one the cap. Run i reaching ``target`` at check k counts as reaching it at k + ``handicap`` * i; the winner is
    the run that reaches it first so counted, the lowest index on a tie. If none reaches it by the cap, the run
    with the highest hit rate there (the lowest index on ties)."""
    last = len(checks) - 1
    for counted in range(last + handicap * (len(curves) - 1) + 1):
        for i, curve in enumerate(curves):
            k = counted - handicap * i
            if not 0 <= k <= last:
                continue
            rate = curve.get(checks[k])
            if rate is None:
                return None  # run i could still win here, before any run counted later
            if rate >= target:
                return i
    rates = [curve[checks[-1]] for curve in curves]  # all known: nobody reached the bar
    return max(range(len(rates)), key=lambda i: (rates[i], -i))


def check_steps(steps: int, cap: int, every: int) -> list[int]:
    """The steps at which a grounding run with a bar measures its held-out hit rate: ``steps``, then every
    ``every`` steps, and the cap."""
    checks = list(range(steps, cap, max(1, every))) + [cap]
    return sorted(set(checks))


class RaceBoard:
    """Where the racing runs post their checks: ``folder/run<i>/<step>.json`` each, written atomically, and
    ``folder/run<i>/failed`` when a run died. ``run``: this process's index; ``runs``: how many race;
    ``handicap``: ``referee``'s."""

    def __init__(self, folder: str | Path, run: int, runs: int, *, target: float, checks: Sequence[int],
                 handicap: int = HANDICAP_CHECKS, poll_seconds: float = 0.5):
        if not 0 <= run < runs:
            raise ValueError(f"run={run} is not one of the {runs} racing runs")
        self.folder, self.run, self.runs = Path(folder), run, runs
        self.target, self.checks, self.handicap, self.poll_seconds = target, list(checks), handicap, poll_seconds
        (self.folder / f"run{run}").mkdir(parents=True, exist_ok=True)

    def post(self, step: int, hit_rate: float) -> None:
        """Record this run's hit rate at a check step."""
        self._write(self.folder / f"run{self.run}" / f"{step}.json", {"step": step, "hit_rate": hit_rate})

    def fail(self) -> None:
        """Mark this run as dead: its peers stop waiting for it."""
        self._write(self.folder / f"run{self.run}" / "failed", {})

    def curves(self) -> list[dict[int, float]]:
        out = []
        for i in range(self.runs):
            folder = self.folder / f"run{i}"
            curve = {}
            for path in folder.glob("*.json") if folder.is_dir() else ():
                record = json.loads(path.read_text())
                curve[int(record["step"])] = float(record["hit_rate"])
            if (folder / "failed").exists():
                curve.update({n: FAILED for n in self.checks if n not in curve})
            out.append(curve)
        return out

    def winner(self) -> int | None:
        return referee(self.curves(), self.checks, self.target, self.handicap)

    def wait_for_winner(self, peers_alive: Callable[[], bool] | None = None) -> int:
        """Block until the race is decided. ``peers_alive``: False once the other runs can post no more (their
        process ended); they are then counted as failed."""
        while (won := self.winner()) is None:
            if peers_alive is not None and not peers_alive():
                for i in range(self.runs):
                    if i != self.run:
                        self._write(self.folder / f"run{i}" / "failed", {"marked_by": self.run})
                continue
            time.sleep(self.poll_seconds)
        return won

    def after_check(self, step: int, hit_rate: float, peers_alive: Callable[[], bool] | None = None) -> bool:
        """Post a check; True when this run should stop: the race is decided, or this run has nothing left to
        train (it reached the bar, or the cap) and waits for the verdict."""
        self.post(step, hit_rate)
        if self.winner() is not None:
            return True
        if hit_rate >= self.target or step >= self.checks[-1]:
            self.wait_for_winner(peers_alive)
            return True
        return False

    @staticmethod
    def _write(path: Path, record: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)


def race_order_seed(seed: int, run: int) -> int:
    """The seed of racing run ``run``'s batch order: run 0 draws as a run without a race does."""
    return seed + 1000 * run


def adopt_grounding(model_dir: str | Path, winner_dir: str | Path) -> None:
    """Make the checkpoint in ``model_dir`` the winner's: its weights (replaced atomically) and its ``grounding``
    record in ``mapo_model.json``. The racing runs are copies of one model, so nothing else differs."""
    model_dir, winner_dir = Path(model_dir), Path(winner_dir)
    names = sorted(n for n in os.listdir(winner_dir) if n.endswith((".safetensors", ".safetensors.index.json")))
    if not names:
        raise ValueError(f"{winner_dir} holds no weights to adopt")
    for name in names:
        fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=".adopt-")
        os.close(fd)
        shutil.copyfile(winner_dir / name, tmp)
        os.replace(tmp, model_dir / name)
    meta_path = model_dir / "mapo_model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta["grounding"] = json.loads((winner_dir / "mapo_model.json").read_text())["grounding"]
    meta_path.write_text(json.dumps(meta, indent=2))
