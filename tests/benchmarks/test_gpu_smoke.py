"""The GPU smoke script's CPU path (`--tiny`): the same trainer code at DeepEyes resolution, no GPU needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_gpu_smoke_script_runs_its_tiny_path(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "MAPO_SMOKE_TIMEOUT": "900"}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_smoke.sh"), "--tiny", "--steps", "1", "--rows", "2",
                          "--out", str(tmp_path / "smoke")], env=env, capture_output=True, text=True, timeout=1000,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "smoke" / "smoke.json").read_text())
    (step,) = result["steps"]
    assert step["generated_tokens"] > 0 and step["trained_tokens"] > 0 and step["skipped_update"] == 0.0
    assert "step 1:" in run.stdout and "fp32 master weights computing in bfloat16" in run.stdout


def test_gpu_smoke_script_says_how_to_provide_pydantic(tmp_path):
    """Without pydantic and without the vendored folder, the script stops before any work and names the fix."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 1\n")  # an interpreter where `import pydantic` fails
    (fake / "python").chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake / "python"), "MAPO_PYDEPS": str(tmp_path / "none")}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_smoke.sh"), "--tiny"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2 and "--vendor" in run.stderr
