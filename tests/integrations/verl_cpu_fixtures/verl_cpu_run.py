"""Inputs and launch of a CPU end-to-end verl run (tiny model, parquet, tool YAML, scripted rollout), and the
reading of what it wrote (MAPO_VERL_DUMP_DIR dumps, verl's file logger)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent

RAY_STARTUP_FAILURES = ("The current node timed out during startup", "Failed to connect to GCS")
RED_BOX = [150, 60, 190, 100]   # the red square in the image (pixels)
GREY_BOX = [0, 0, 40, 40]       # background


def zoom(box, label="red square", thought="look closer") -> str:
    """A zoom turn. Trajectories of one prompt must differ from their first turn on: the script tells them
    apart by what they generated so far."""
    call = {"name": "image_zoom_in_tool", "arguments": {"bbox_2d": box, "label": label}}
    return f"<think>{thought}</think><tool_call>\n{json.dumps(call)}\n</tool_call>"


def answer(letter: str) -> str:
    return f"<think>done</think><answer>{letter}</answer>"


def image() -> Image.Image:
    """200x120 grey with a red 40x40 square at (150, 60)-(190, 100)."""
    im = Image.new("RGB", (200, 120), (128, 128, 128))
    im.paste((255, 0, 0), tuple(RED_BOX))
    return im


def build_inputs(out: Path, script: list[list[str]]) -> dict[str, Path]:
    """Tiny Qwen2.5-VL (mapo.models.zoo), a 2-row parquet (prompts of different lengths), the tool YAML with
    the stand-in verifier, and the rollout script."""
    from mapo.data.parquet import task_row, write_rows
    from mapo.data.task import Task
    from mapo.models.zoo import build_tiny_model, train_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    questions = ["What colour is the square?", "Look at the small object on the right: what colour is it?"]
    tasks = [Task(id=f"t{i}", image=image(), question=q, answer="A", options=["red", "blue"])
             for i, q in enumerate(questions)]
    texts = questions + [t for traj in script for t in traj] * 4
    tokenizer = train_tokenizer(texts, vocab_size=400)
    model = build_tiny_model(out / "model", tokenizer, family="qwen2_5_vl", seed=0)
    data = write_rows((task_row(t, i) for i, t in enumerate(tasks)), out / "train.parquet")
    tools = {"tools": [{"class_name": "redness_tool.RednessZoomTool",
                        "config": {"type": "native", "zoom": {"min_side": 28, "crop_max_pixels": 56 * 56}}}]}
    (out / "tools.yaml").write_text(yaml.safe_dump(tools))
    (out / "script.json").write_text(json.dumps(script))
    return {"model": model, "data": data, "tools": out / "tools.yaml", "script": out / "script.json"}


@dataclass
class Run:
    """What a run left: the advantage steps, the weights at each sync, the logged metrics, time and memory."""

    advantages: list[dict]
    weights: list[dict]
    metrics: list[dict]
    seconds: float
    peak_rss_gb: float
    log: str


def launch(out: Path, estimator: str, script: list[list[str]], overrides: list[str] = (),
           timeout: int = 600) -> Run:
    """Build the inputs and run ``python -m mapo.integrations.verl.main_ppo`` on CPU for one step."""
    inputs = build_inputs(out, script)
    dump = out / "dump"
    env = dict(os.environ)
    env.update({
        "VERL_USE_EXTERNAL_MODULES": "mapo.integrations.verl.cpu", "VERL_PLATFORM": "cpu",
        "MAPO_VERL_DUMP_DIR": str(dump), "VERL_FILE_LOGGER_PATH": str(out / "metrics.jsonl"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(FIXTURES), env.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_DEDUP_LOGS": "0",
        "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
        # a loaded 2-core machine starts Ray's agents and workers slowly: wait for them instead of failing
        "RAY_agent_register_timeout_ms": "180000", "RAY_worker_register_timeout_seconds": "600",
    })
    temp_dir = Path("/tmp") / f"ray_mapo_{os.getpid()}_{out.name[-12:]}"
    cmd = [sys.executable, "-m", "mapo.integrations.verl.main_ppo", "--config-path", str(ROOT / "configs" / "verl"),
           "--config-name", "cpu_smoke",
           f"actor_rollout_ref.model.path={inputs['model']}",
           f"data.train_files={inputs['data']}", f"data.val_files={inputs['data']}",
           f"algorithm.adv_estimator={estimator}",
           f"actor_rollout_ref.rollout.multi_turn.tool_config_path={inputs['tools']}",
           f"+actor_rollout_ref.rollout.custom.script={inputs['script']}",
           f"actor_rollout_ref.rollout.agent.agent_loop_config_path={ROOT / 'configs' / 'verl' / 'agent_loops.yaml'}",
           "trainer.logger=[console,file]",
           f"+ray_kwargs.ray_init._temp_dir={temp_dir}",
           *overrides]
    for _ in range(3):
        start = time.time()
        try:
            proc = subprocess.Popen(cmd, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
            peak = _watch(proc, timeout, temp_dir)
        finally:
            stop_ray(temp_dir)
        log = proc.stdout.read() if proc.stdout else ""
        seconds = time.time() - start
        # Ray gives a starting raylet fixed waits (30 s to register, ~15 s for its metrics agent), which a
        # loaded machine can miss before anything of verl runs: start again
        if proc.returncode == 0 or not any(m in log for m in RAY_STARTUP_FAILURES):
            break
    if proc.returncode != 0:
        raise AssertionError(f"main_ppo exited {proc.returncode} after {seconds:.0f} s:\n{log[-6000:]}")
    return Run(advantages=[torch.load(p, weights_only=False) for p in sorted(dump.glob("advantages_*.pt"))],
               weights=[torch.load(p, weights_only=False) for p in sorted(dump.glob("weights_0_*.pt"))],
               metrics=[json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line],
               seconds=seconds, peak_rss_gb=peak, log=log)


#: Stop the run above this total RSS (CI's budget) or when the machine has less than this available.
MAX_RSS_GB = 14.0
MIN_AVAILABLE_GB = 1.0


def _ray_processes(temp_dir: Path) -> list:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(temp_dir) in part for part in (p.info["cmdline"] or [])):
                found.append(p)
        except psutil.Error:
            continue
    return found


def stop_ray(temp_dir: Path) -> None:
    """End the processes of the Ray instance under ``temp_dir`` (only those: other Ray instances live on)."""
    import psutil

    procs = _ray_processes(temp_dir)
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def _watch(proc: subprocess.Popen, timeout: int, temp_dir: Path) -> float:
    """Wait for ``proc``; return the peak total RSS (GB) of it and of the Ray instance under ``temp_dir``.
    The run is stopped past ``MAX_RSS_GB`` or when the machine runs out of memory (others share it)."""
    import threading

    import psutil

    peak = 0.0
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
    reader.start()
    deadline = time.time() + timeout
    root = psutil.Process(proc.pid)
    stopped = ""
    while proc.poll() is None:
        if time.time() > deadline:
            stopped = f"timed out after {timeout} s"
        try:
            procs = {p.pid: p for p in [root, *root.children(recursive=True), *_ray_processes(temp_dir)]}
            rss = 0
            for p in procs.values():
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss / 1e9)
        except psutil.Error:
            pass
        if peak > MAX_RSS_GB:
            stopped = f"total RSS {peak:.1f} GB > {MAX_RSS_GB} GB"
        elif psutil.virtual_memory().available / 1e9 < MIN_AVAILABLE_GB:
            stopped = "the machine is out of memory"
        if stopped:
            proc.kill()
            stop_ray(temp_dir)
            output.append(f"\n[verl_cpu_run] stopped: {stopped}\n")
            break
        time.sleep(1.0)
    proc.wait()
    reader.join(timeout=30)
    proc.stdout = _Text("".join(output))
    return peak


class _Text:
    def __init__(self, text: str):
        self.text = text

    def read(self) -> str:
        return self.text
