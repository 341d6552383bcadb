"""The root Typer app and the one place that maps our errors to exit codes."""

from __future__ import annotations

import sys

import typer

from portability.cli import _errors

app = typer.Typer(
    name="portability",
    help="Data-portability transfers: seed, migrate, schedule, run and consume.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one line."),
) -> None:
    _errors.DEBUG = debug


def _register() -> None:
    from portability.cli import consume, db, events, keys, runs, scheduler, seed, streams

    for module in (db, seed, scheduler, consume, runs, keys, streams, events):
        module.register(app)


def main() -> None:
    _register()
    try:
        code = app(standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:
        sys.exit(_errors.report(exc))
    # Without standalone mode, click returns what ``typer.Exit`` carried instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)
