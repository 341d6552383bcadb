"""``portability scheduler``: the thin scheduler without Celery beat.

``run`` loops (tick every ``PORTABILITY_SCHEDULER_TICK_SECONDS``, reconcile now and then)
until SIGINT/SIGTERM: the first signal is a warm stop (the batch in hand is committed and
enqueued, then the loop exits 0), a second one stops at once (exit 130; the uncommitted
batch rolls back). ``tick`` runs one tick and says what it did. Both only need the database
and the broker; several may run at once against one database.
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

import typer

from portability.cli._context import STATE, enqueuer, load_settings
from portability.cli._logging import configure_logging
from portability.errors import BrokerUnavailableError

__all__ = ["EXIT_COLD_STOP", "EXIT_WARM_STOP", "register"]

EXIT_WARM_STOP = 0
EXIT_COLD_STOP = 130

group = typer.Typer(
    help="Claim due schedules, create their runs and enqueue them.", no_args_is_help=True
)


@group.command("tick")
def tick_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Run one tick now: claim every due schedule, create and enqueue its run."""
    from schedules import DatabaseRuntime, run_tick

    settings = load_settings()
    runtime = DatabaseRuntime.from_settings(settings)
    try:
        result = run_tick(runtime, enqueuer())
    except BrokerUnavailableError as exc:
        raise BrokerUnavailableError(
            f"{exc}; the runs this tick created are committed and stay queued: the reconciler "
            "sends them once the broker is back"
        ) from exc
    finally:
        runtime.close()
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    typer.echo(
        f"{result.claimed} due: {result.created} runs created and enqueued, "
        f"{result.skipped} skipped (previous run still going), {result.disabled} disabled"
    )
    if result.run_ids:
        typer.echo("runs: " + " ".join(str(run_id) for run_id in result.run_ids))


@group.command("run")
def run_cmd(
    tick_seconds: float | None = typer.Option(
        None, "--tick-seconds", min=0.1, help="Seconds between ticks (default from settings)."
    ),
) -> None:
    """Tick and reconcile until SIGINT/SIGTERM (a second signal stops at once)."""
    from portability.logs import configure
    from schedules import DatabaseRuntime
    from schedules.loop import ColdStop, SchedulerLoop
    from workers import celery_enqueue_deliveries, celery_enqueue_user_exports, scheduler_probe

    configure_logging(debug=STATE.debug, long_running=True)
    settings = load_settings()
    configure(settings.log_format, settings.log_level)
    runtime = DatabaseRuntime.from_settings(settings)
    probe, stop_metrics = scheduler_probe(settings, runtime.engine)
    loop = SchedulerLoop(
        runtime,
        enqueuer(),
        tick_seconds=tick_seconds,
        probe=probe,
        enqueue_deliveries=celery_enqueue_deliveries(settings),
        enqueue_user_exports=celery_enqueue_user_exports(settings),
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if loop.is_stopping:
            raise ColdStop()
        print(
            f"{signal.Signals(signum).name}: finishing the batch in hand "
            "(signal again to stop now)",
            file=sys.stderr,
        )
        loop.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    every = tick_seconds or settings.scheduler_tick_seconds
    typer.echo(f"scheduler running: a tick every {every} s (Ctrl-C to stop)")
    try:
        loop.run()
    except ColdStop:
        print("stopped at once; the batch in hand was rolled back", file=sys.stderr)
        raise typer.Exit(EXIT_COLD_STOP) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_metrics()
        runtime.close()
    typer.echo(f"scheduler stopped after {loop.ticks} ticks")
    raise typer.Exit(EXIT_WARM_STOP)


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="scheduler")
