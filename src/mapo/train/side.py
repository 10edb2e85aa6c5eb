"""A second process for the pipeline's steps that do not wait on the main chain (world -> tiny model -> SFT ->
RL): the vision warm-up and the verifier's training. On a 2-core machine with one torch thread per
process they run beside the chain instead of after it; what they write is what the main process would write.

The side process writes its logs to a file (two progress bars on one terminal garble each other) and the main
process says where it is. A step that fails there raises in the main process with that file's name.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing.Self is Python 3.11+; mapo supports 3.10
    from typing_extensions import Self

log = logging.getLogger("mapo.demo")


def _libc():
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _die_with_parent() -> None:
    """Linux: the side process gets SIGTERM when the main process dies, however it dies (a killed demo must not
    leave a worker training on for nobody). Elsewhere nothing: the pool's own shutdown still applies. The signal
    follows the *thread* that started the worker: submit the first call from a thread that outlives the work
    (the demo's main thread does)."""
    if sys.platform.startswith("linux"):
        try:
            _libc().prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (AttributeError, OSError):
            pass


def _release_memory() -> None:
    """Hand the memory a finished call freed back to the system (glibc keeps freed heap otherwise): the side
    process lives on after a step that decoded hundreds of images, beside a main process that needs the RAM."""
    gc.collect()
    try:
        _libc().malloc_trim(0)
    except (AttributeError, OSError):
        pass


def _start_child(log_path: str, threads: int | None) -> None:
    """Initializer of the side process: its stdout/stderr (and logging) go to ``log_path``."""
    _die_with_parent()
    stream = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    sys.stdout = sys.stderr = stream
    logging.basicConfig(level=logging.INFO, stream=stream, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        force=True)
    if threads:
        import torch

        torch.set_num_threads(threads)


def _timed(fn: Callable[..., Any], args: tuple, release: bool = False) -> tuple[Any, float]:
    start = time.perf_counter()
    try:
        result = fn(*args)
    finally:
        if release:
            _release_memory()
    return result, time.perf_counter() - start


class SideProcess:
    """One worker process (``spawn``: nothing of the parent's torch state is shared) that runs submitted calls in
    order; ``enabled=False`` runs each call at once in this process instead, so callers need one code path.

    ``submit(name, fn, *args)`` starts ``fn(*args)``; ``result(name)`` waits for it and returns its value (if it
    failed there: an error naming the step and the log). ``seconds[name]``: how long the call ran.
    The process starts at the first call that needs it."""

    def __init__(self, log_path: str | Path, threads: int | None, enabled: bool = True):
        self.log_path = Path(log_path)
        self.enabled = enabled
        self.threads = threads
        self.seconds: dict[str, float] = {}
        self._futures: dict[str, Future] = {}
        self._here: set[str] = set()  # names run in this process: their errors are raised as they are
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, name: str, fn: Callable[..., Any], *args: Any, inline: bool = False) -> None:
        """Run ``fn(*args)`` in the second process, or at once here when disabled or ``inline`` (a call with
        nothing to build, e.g. a step already done: not worth starting a process for)."""
        if not self.enabled or inline:
            self._here.add(name)
            future: Future = Future()
            try:
                future.set_result(_timed(fn, args))
            except Exception as exc:  # noqa: BLE001 - raised by result(), as from the second process
                future.set_exception(exc)
        else:
            if self._pool is None:  # started at the first real work
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_child,
                                                 initargs=(str(self.log_path), self.threads))
            log.info("[%s] running in a second process (its log: %s)", name, self.log_path)
            future = self._pool.submit(_timed, fn, args, True)
        self._futures[name] = future

    def __contains__(self, name: str) -> bool:
        """Whether a call named ``name`` was submitted."""
        return name in self._futures

    def running(self, name: str) -> bool:
        """Whether the call named ``name`` is still queued or running."""
        return not self._futures[name].done()

    def wait(self) -> None:
        """Wait until every call in the second process has finished (a failure is raised by ``result``)."""
        wait([f for n, f in self._futures.items() if n not in self._here])

    def result(self, name: str) -> Any:
        try:
            value, seconds = self._futures[name].result()
        except Exception as exc:
            if name in self._here:
                raise
            raise RuntimeError(f"the {name} step failed in the second process; its log: {self.log_path} "
                               f"(set parallel: false to run it in this process)") from exc
        self.seconds[name] = seconds
        return value

    def close(self, abort: bool = False) -> None:
        """Wait for the calls under way; ``abort``: stop them (the main chain failed, nothing will use them)."""
        if self._pool is None:
            return
        if abort:  # concurrent.futures has no public way to stop a running call before Python 3.14
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                proc.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.close(abort=exc_type is not None)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class MainThreads:
    """The main process's torch threads, set by phase: ``shared()`` (``shared`` threads) for work that may run
    beside a call in the second process, where more threads than cores would spin against each other;
    ``alone()`` (``alone`` threads, None: every usable CPU) for work after it, once the second process has
    finished. On the 2-core machine an SFT step ran 1.6x faster, an RL update 1.5x, with two threads than with
    one when nothing else ran (docs/results.md section 12).

    Phases, not the second process's progress, decide the count: two threads round a gradient's sums in
    another order than one, so a count that followed the clock would make the run's numbers depend on how fast
    the verifier happened to train. ``alone()`` waits for the second process instead (in the demo it is done
    by then). Call both from the main thread: torch's thread count belongs to the thread that sets it."""

    def __init__(self, side: SideProcess, shared: int | None, alone: int | None):
        self.side = side
        self.shared_threads = shared
        self.alone_threads = alone or usable_cpus()

    def shared(self) -> int:
        """Set, and return, the thread count for work beside the second process."""
        return self._set(self.shared_threads)

    def alone(self) -> int:
        """Wait for the second process's calls, then set and return the thread count for work alone."""
        self.side.wait()
        return self._set(self.alone_threads)

    @staticmethod
    def _set(n: int | None) -> int:
        import torch

        if n and n != torch.get_num_threads():
            torch.set_num_threads(n)
        return torch.get_num_threads()
