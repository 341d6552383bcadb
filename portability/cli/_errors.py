"""The one table from outcomes to exit codes, and the one-line report of each.

    0    success
    1    the operation failed (including an environment that is not ready: database
         unreachable, schema not migrated, broker down; the line names the fix)
    2    usage error: a bad command, option or value (one line, then the usage)
    3    not found: no such run, app, grant, schedule or destination
    130  interrupted (Ctrl-C, or a second signal to a long-running command)

Typer 0.26 and later vendor their own copy of Click, so usage errors are recognised through
what ``typer`` itself exports (``typer.TyperException``, whose Click subclasses carry
``exit_code`` and, for usage errors, ``ctx``), never through the separate ``click`` package.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer

from portability.errors import (
    ConfigurationError,
    NotFoundError,
    PortabilityError,
    ValidationError,
)

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "report",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 operation failed, 2 usage error, 3 not found, 130 interrupted."
)


def report(exc: BaseException, *, debug: bool, database_url: str | None = None) -> int:
    """Print ``exc`` for a human (one line; the traceback too with ``--debug``) and return the
    exit code of its family."""
    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt | typer.Abort):
        _line("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, typer.TyperException):  # Click's errors, as vendored by Typer
        return _usage_error(exc)
    translated = _translate(exc, database_url)
    if debug:
        traceback.print_exception(exc)
    if isinstance(translated, NotFoundError):
        _line(f"error: {translated}")
        return EXIT_NOT_FOUND
    if isinstance(translated, ValidationError | ConfigurationError):
        _line(f"error: {translated}")
        return EXIT_USAGE
    if isinstance(translated, PortabilityError):
        _line(f"error: {translated}")
        return EXIT_FAILED
    if not debug:
        _line(f"internal error: {type(exc).__name__}: {_first_line(exc)} (re-run with --debug)")
    return EXIT_FAILED


def _usage_error(exc: typer.TyperException) -> int:
    ctx: Any = getattr(exc, "ctx", None)
    code = int(getattr(exc, "exit_code", EXIT_USAGE))
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        # ``portability runs`` alone: say what is missing, then what exists.
        names = ", ".join(sorted(getattr(ctx.command, "commands", {}) or {}))
        _line(f"error: missing command; choose one of: {names}")
    else:
        _line(f"error: {_first_line(exc, exc.format_message())}")
    if ctx is not None:
        _line(f"{ctx.get_usage()}  (see '{ctx.command_path} --help')")
    return code if code else EXIT_USAGE


def _translate(exc: BaseException, database_url: str | None) -> BaseException:
    if database_url is None or isinstance(exc, PortabilityError):
        return exc
    from portability.db.diagnose import translate

    return translate(exc, database_url) or exc


def _first_line(exc: BaseException, text: str | None = None) -> str:
    text = str(exc) if text is None else text
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _line(text: str) -> None:
    print(text, file=sys.stderr)
