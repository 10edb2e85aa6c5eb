"""The demo's second process: calls run there in order, their output goes to its log, a failure raises here with
the log's path, and the in-process mode (parallel: false) behaves the same."""

from __future__ import annotations

import math
import time

import pytest
import torch

from mapo.train.side import MainThreads, SideProcess, usable_cpus


@pytest.mark.parametrize("enabled", [True, False])
def test_calls_run_in_order_and_return_their_values(enabled, tmp_path):
    with SideProcess(tmp_path / "logs" / "side.log", threads=1, enabled=enabled) as side:
        side.submit("a", math.sqrt, 16.0)
        side.submit("b", math.hypot, 3.0, 4.0)
        assert side.result("b") == 5.0
        assert side.result("a") == 4.0
    assert set(side.seconds) == {"a", "b"} and all(s >= 0 for s in side.seconds.values())


def test_the_second_process_writes_to_its_log_not_the_terminal(tmp_path, capfd):
    log = tmp_path / "side.log"
    with SideProcess(log, threads=1) as side:
        side.submit("print", print, "hello from the side")
        side.result("print")
    assert "hello from the side" in log.read_text()
    assert "hello from the side" not in capfd.readouterr().out


def test_a_failure_names_the_step_and_the_log(tmp_path):
    log = tmp_path / "side.log"
    with SideProcess(log, threads=1) as side:
        side.submit("verifier", math.sqrt, -1.0)
        with pytest.raises(RuntimeError, match=r"verifier step failed in the second process.*side\.log") as err:
            side.result("verifier")
    assert isinstance(err.value.__cause__, ValueError)


def test_in_process_a_failure_is_the_call_s_own_error(tmp_path):
    with SideProcess(tmp_path / "side.log", threads=None, enabled=False) as side:
        side.submit("verifier", math.sqrt, -1.0)
        with pytest.raises(ValueError):
            side.result("verifier")
    assert not (tmp_path / "side.log").exists()


def test_inline_calls_run_here_and_start_no_process(tmp_path):
    with SideProcess(tmp_path / "side.log", threads=1) as side:
        side.submit("done already", math.sqrt, 9.0, inline=True)
        assert side._pool is None
        assert side.result("done already") == 3.0
        side.submit("inline failure", math.sqrt, -1.0, inline=True)
        with pytest.raises(ValueError):
            side.result("inline failure")


def test_a_failure_in_the_main_chain_stops_the_second_process_instead_of_waiting_for_it(tmp_path):
    start = time.perf_counter()
    with pytest.raises(KeyError), SideProcess(tmp_path / "side.log", threads=1) as side:
        side.submit("slow", time.sleep, 120.0)
        time.sleep(2)  # the call is under way
        raise KeyError("SFT failed")
    assert time.perf_counter() - start < 60


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_second_process_dies_with_a_killed_main_process(tmp_path):
    """A demo killed outright (SIGKILL: no shutdown runs) must not leave its worker training on for nobody."""
    import os
    import signal
    import subprocess
    import sys

    script = ("import os, sys, time\n"
              "from mapo.train.side import SideProcess\n"
              f"side = SideProcess({str(tmp_path / 'side.log')!r}, threads=1)\n"
              "side.submit('pid', os.getpid)\n"
              "print(side.result('pid'), flush=True)\n"
              "side.submit('sleep', time.sleep, 600)\n"
              "time.sleep(600)\n")
    main = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(main.stdout.readline())
        os.kill(main.pid, signal.SIGKILL)
        main.wait(30)
        for _ in range(100):
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the worker outlived the main process by 10 s")
    finally:
        main.kill()


def test_the_main_process_shares_the_cores_by_phase_and_waits_for_the_second_before_taking_them(tmp_path):
    """``shared()`` beside a call there; ``alone()`` only once it finished: the thread count (which moves a
    gradient's last bits) follows the phase, never the clock."""
    before = torch.get_num_threads()
    try:
        with SideProcess(tmp_path / "side.log", threads=1) as side:
            threads = MainThreads(side, shared=1, alone=3)
            side.submit("sleep", time.sleep, 3.0)
            assert threads.shared() == 1
            start = time.perf_counter()
            assert threads.alone() == 3
            assert time.perf_counter() - start > 1.0  # it waited for the call
            assert threads.shared() == 1 and threads.alone() == 3  # nothing left to wait for
        with SideProcess(tmp_path / "side.log", threads=1, enabled=False) as inline:
            inline.submit("sleep", time.sleep, 0.0)  # parallel: false runs calls here
            assert MainThreads(inline, 1, None).alone() == usable_cpus()
    finally:
        torch.set_num_threads(before)
