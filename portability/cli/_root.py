"""The root Typer app, the one-line registration of each command group, and ``main``.

A command group is one module with a ``register(root)`` function; adding one is one line in
``GROUPS``. ``main`` runs the app without Click's standalone mode, keeps the exit code a
command returns (``scheduler run`` returns 130 on a cold stop), and hands every error to
``portability.cli._errors``, the one place that maps outcomes to exit codes.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

from portability.cli import _context, _errors
from portability.cli._logging import configure_logging

__all__ = ["GROUPS", "app", "main", "run"]

#: The command groups, one module each under ``portability.cli``.
GROUPS: tuple[str, ...] = (
    "db",
    "seed",
    "scheduler",
    "consume",
    "runs",
    "schedules",
    "apps",
    "grants",
    "destinations",
    "doctor",
    "audit",
    "api",
    "keys",
    "streams",
    "health",
    "events",
    "exports",
)

app = typer.Typer(
    name="portability",
    help=(
        "Data-portability transfers: migrate, seed, schedule, run, inspect and consume.\n\n"
        + _errors.EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    actor: str | None = typer.Option(
        None,
        "--actor",
        envvar="PORTABILITY_ACTOR",
        help="Who is acting, recorded in the audit log (default: the OS user).",
    ),
) -> None:
    _context.STATE.debug = debug
    _context.STATE.actor = actor
    configure_logging(debug=debug)


_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    for name in GROUPS:
        importlib.import_module(f"portability.cli.{name}").register(app)
    _registered = True


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit code."""
    _register()
    _context.STATE.reset()
    try:
        result = app(
            args=list(argv) if argv is not None else None,
            prog_name="portability",
            standalone_mode=False,
        )
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else _errors.EXIT_FAILED
    except BaseException as exc:
        return _errors.report(
            exc, debug=_context.STATE.debug, database_url=_context.STATE.database_url
        )
    finally:
        _context.STATE.close()
    return result if isinstance(result, int) else _errors.EXIT_OK


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``portability`` console script."""
    sys.exit(run(argv))
