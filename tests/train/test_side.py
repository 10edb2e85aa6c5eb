"""The demo's second process: calls run there in order, their output goes to its log, a failure raises here with
the log's path, and the in-process mode (parallel: false) behaves the same."""

from __future__ import annotations

import math
import time

import pytest

from mapo.train.side import SideProcess


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
