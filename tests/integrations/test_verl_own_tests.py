"""verl's own CPU tests of its advantage registry still pass with mapo's integration imported first.

They run in a subprocess: verl's registry tests replace ``ADV_ESTIMATOR_REGISTRY`` while they run, which
must not leak into this process. ``-p mapo.integrations.verl`` imports (and so registers) mapo's estimators
before verl's test modules load.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

# The registry tests (register_adv_est / get_adv_estimator_fn) and the estimator equivalence tests.
VERL_TESTS = ["trainer/ppo/test_core_algos_on_cpu.py"]


def _verl_tests_dir() -> Path | None:
    spec = importlib.util.find_spec("verl")
    if spec is None or spec.origin is None:
        return None
    tests = Path(spec.origin).parents[1] / "tests"  # verl's wheel ships its tests as a top-level package
    return tests if (tests / VERL_TESTS[0]).exists() else None


def test_verl_registry_tests_pass_with_mapo_imported(tmp_path):
    tests = _verl_tests_dir()
    if tests is None:
        pytest.skip("verl's own tests are not installed next to verl")
    files = [str(tests / f) for f in VERL_TESTS]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", "-p", "mapo.integrations.verl",
         "--rootdir", str(tmp_path), "-W", "ignore", *files],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
