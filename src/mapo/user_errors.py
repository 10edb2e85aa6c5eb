"""Mistakes a user can make on the command line print one line and exit with code 2, never a traceback.

Every ``mapo`` command is wrapped by ``one_line_errors`` (``mapo.cli`` does it for all of them): an exception of
a user-facing type (a bad config key, a missing or malformed data file, an image path outside the dataset, a
results folder made with other settings, ...) becomes ``error: <message>`` on stderr and exit code 2. The
messages themselves name the input and the fix (docs/errors.md lists them). Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from mapo.data.inputs import InputError

EXIT_USER_ERROR = 2

F = TypeVar("F", bound=Callable[..., Any])


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The user-facing error classes of every layer (imported here lazily, so `mapo --help` stays fast)."""
    from mapo.data.benchmarks.items import BenchmarkFormatError
    from mapo.data.benchmarks.paths import UnsafePathError
    from mapo.data.images import ImageError
    from mapo.data.stream import DataFileError
    from mapo.eval.settings import SettingsMismatch
    from mapo.models.precision import DeviceError
    from mapo.train.config import ConfigError
    from mapo.train.sft_data import ChatDataError

    return (InputError, ConfigError, BenchmarkFormatError, UnsafePathError, ImageError, DataFileError,
            SettingsMismatch, DeviceError, ChatDataError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` (one line) to stderr and exit with code 2."""
    import typer

    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def one_line_errors(command: F) -> F:
    """Wrap a Typer command so that user-facing errors (and ``typer.BadParameter`` raised inside it) print one
    line and exit 2. Typer reads the wrapped signature through ``functools.wraps``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import typer

        try:
            return command(*args, **kwargs)
        except typer.BadParameter as exc:
            hint = exc.param_hint if isinstance(exc.param_hint, str) else None
            fail(f"{hint}: {exc.message}" if hint else exc.message)
        except typer.Exit:
            raise
        except Exception as exc:
            if isinstance(exc, _user_error_types()):
                fail(str(exc) if not isinstance(exc, OSError) or not exc.filename else
                     f"{exc.filename}: {exc.strerror or exc}")
            raise

    return wrapper  # type: ignore[return-value]


def wrap_commands(app: Any) -> None:
    """Apply ``one_line_errors`` to every command of a Typer app and of its sub-apps (once each)."""
    for info in getattr(app, "registered_commands", []):
        if info.callback is not None and not getattr(info.callback, "_one_line_errors", False):
            info.callback = one_line_errors(info.callback)
            info.callback._one_line_errors = True  # type: ignore[attr-defined]
    for group in getattr(app, "registered_groups", []):
        if group.typer_instance is not None:
            wrap_commands(group.typer_instance)
