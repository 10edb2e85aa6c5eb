"""One call that evaluates a policy on a benchmark: what ``mapo eval`` runs, and what the trainer's demo calls
with the policy it has in memory."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import torch

from mapo.agent.protocol import ProtocolConfig
from mapo.agent.rollout import RolloutEngine
from mapo.data.benchmarks import count_items, iter_benchmark, resolve_data
from mapo.data.images import DEFAULT_DECODE_LIMIT
from mapo.eval.records import ResultsFile
from mapo.eval.runner import RESULTS_NAME, SUMMARY_NAME, EvalConfig, run_evaluation
from mapo.eval.settings import RUN_NAME, check_or_write_settings
from mapo.models import hf_qwen  # load_policy looked up at call time: tests replace it
from mapo.rewards import RewardConfig
from mapo.verifier import load_verifier


def clear_results(out: Path) -> None:
    """Remove what an earlier run wrote into ``out`` (results, summary, settings, media, viewer)."""
    for name in (RESULTS_NAME, SUMMARY_NAME, RUN_NAME, "media", "index.html"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def evaluate_policy(policy: Any, bench: str, data: str | Path, out: str | Path, *, protocol: Any = None,
                    cfg: EvalConfig | None = None, reward_cfg: RewardConfig | None = None,
                    verifier_cfg: Any = None, verifier: Any = None, model_id: str | None = None,
                    max_decode_pixels: int = DEFAULT_DECODE_LIMIT, allow_absolute_paths: bool = False,
                    seed: int = 0, device: str = "cpu", dtype: str | None = None, fresh: bool = False,
                    progress: bool = True, log=print, fast_generation: bool = True) -> dict:
    """Evaluate ``policy`` (a checkpoint directory, or a ``PolicyBackend`` already loaded) on benchmark ``bench``
    stored at ``data``, writing ``out/results.jsonl``, ``summary.json`` and ``run.json``; returns the summary.

    ``protocol``: a ``ProtocolConfig`` (default: its defaults). ``verifier_cfg`` / ``verifier``: a
    ``VerifierConfig`` to load, or a loaded verifier, for alignment scores. Resumes unless ``fresh``; refuses
    to resume with other settings (``SettingsMismatch``). ``model_id`` names an in-memory policy in ``run.json``.
    ``device`` / ``dtype`` (a checkpoint directory only): ``auto`` = CUDA with bfloat16 when a GPU is visible.
    ``fast_generation`` (a checkpoint directory only): ``load_policy``'s.
    """
    out, data = Path(out), resolve_data(bench, data)
    cfg = cfg or EvalConfig()
    protocol = protocol or ProtocolConfig()
    reward_cfg = reward_cfg or RewardConfig()
    if fresh:
        clear_results(out)
    is_path = isinstance(policy, (str, Path))
    settings = {"bench": bench, "data": str(data.resolve()),
                "model": str(Path(policy).resolve()) if is_path else (model_id or type(policy).__name__),
                "k": cfg.k, "protocol": protocol.model_dump(), "reward": reward_cfg.model_dump(),
                "verifier": verifier_cfg.model_dump(mode="json") if verifier_cfg is not None else None,
                "seed": seed}
    done = ResultsFile(out / RESULTS_NAME).finished_ids()
    items = iter_benchmark(bench, data, max_decode_pixels=max_decode_pixels, skip=done,
                           allow_absolute_paths=allow_absolute_paths)
    # Read the first item now: a file in the wrong format fails here, before the model loads and before run.json
    # is written (so a corrected --data can reuse the same --out).
    first = next(items, None)
    items = itertools.chain([first] if first is not None else [], items)
    check_or_write_settings(out, settings)
    n_items = count_items(bench, data)
    if done:
        log(f"resuming: {len(done)} item(s) already in {out / RESULTS_NAME} are skipped")
    torch.manual_seed(seed)
    if is_path:
        policy = hf_qwen.load_policy(policy, device=device, dtype=dtype, fast_generation=fast_generation)
    if verifier is None and verifier_cfg is not None:
        verifier = load_verifier(verifier_cfg)
    engine = RolloutEngine(policy, protocol_cfg=protocol)
    return run_evaluation(engine, items, out, bench=bench, cfg=cfg, reward_cfg=reward_cfg, verifier=verifier,
                          progress=progress, run_info=settings,
                          total=None if n_items is None else max(0, n_items - len(done)))
