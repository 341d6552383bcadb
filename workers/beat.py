"""The beat entry: ``celery -A workers beat`` runs the portability scheduler tick in-process.

The tick is not sent as a Celery task: a tick message would queue behind long exports (and
expire there), so beat itself claims due schedules, writes their runs and enqueues them, every
``PORTABILITY_SCHEDULER_TICK_SECONDS``, and re-enqueues lost runs every half
``PORTABILITY_RECONCILE_AFTER_SECONDS``, and applies the change feed's retention every
``PORTABILITY_FEED_RETENTION_INTERVAL_SECONDS``, and dispatches events to webhook endpoints every
``PORTABILITY_EVENTS_DISPATCH_INTERVAL_SECONDS``, and publishes queued user exports and
deletes expired archives every ``PORTABILITY_USER_EXPORT_HOUSEKEEPING_SECONDS``. Several beats
at once are safe: schedules are claimed row by row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

import time
from typing import Any

from celery import beat

__all__ = ["TickingScheduler"]


class TickingScheduler(beat.Scheduler):  # type: ignore[misc]
    """A beat scheduler whose own heartbeat is the portability scheduler."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_tick = 0.0
        self._next_reconcile = 0.0
        self._next_retention = 0.0
        self._probe: Any = None
        self._next_dispatch = 0.0
        self._next_user_exports = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        wait = float(super().tick(*args, **kwargs))  # other beat entries, if any are configured
        from workers.app import app, enqueue_runs, runtime, settings_of

        settings = settings_of(app)
        probe = self._probe or self._make_probe()
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + settings.scheduler_tick_seconds
            self._guarded(probe, "tick", lambda: _tick(runtime(), enqueue_runs, probe))
        if now >= self._next_reconcile:
            self._next_reconcile = now + max(1.0, settings.reconcile_after_seconds / 2)
            self._guarded(probe, "reconcile", lambda: _reconcile(runtime(), enqueue_runs, probe))
        if now >= self._next_dispatch:
            self._next_dispatch = now + settings.events_dispatch_interval_seconds
            self._guarded(probe, "events", lambda: _dispatch(runtime()))
        if now >= self._next_user_exports:
            self._next_user_exports = now + settings.user_export_housekeeping_seconds
            self._guarded(probe, "user exports", lambda: _user_exports(runtime()))
        if now >= self._next_retention:
            self._next_retention = now + settings.feed_retention_interval_seconds
            self._guarded(probe, "retention", lambda: _retention(runtime()))
        upcoming = min(self._next_tick, self._next_dispatch, self._next_user_exports)
        return min(wait, max(0.05, upcoming - time.monotonic()))

    def _make_probe(self) -> Any:
        from portability.health import Heartbeat
        from portability.probes import SchedulerProbe
        from workers._publish import queue_depths, worker_queue_names
        from workers.app import app, runtime, settings_of

        settings = settings_of(app)
        names = worker_queue_names(app, settings.export_queues)
        self._probe = SchedulerProbe(
            runtime().metrics,
            runtime().engine,
            heartbeat=Heartbeat(settings.resolved_health_dir, "scheduler"),
            queue_depths=lambda: queue_depths(app, names),
        )
        return self._probe

    @staticmethod
    def _guarded(probe: Any, what: str, step: Any) -> None:
        # A database or broker outage must not kill beat: one line, and again next tick.
        try:
            step()
        except Exception as exc:
            probe.failed(what, exc)


def _tick(runtime: Any, enqueue: Any, probe: Any) -> None:
    from schedules import run_tick

    started = time.perf_counter()
    result = run_tick(runtime, enqueue)
    probe.ticked(time.perf_counter() - started, result.created, result.skipped, result.disabled)


def _reconcile(runtime: Any, enqueue: Any, probe: Any) -> None:
    from schedules import reconcile_runs

    probe.resent(reconcile_runs(runtime, enqueue))


def _dispatch(runtime: Any) -> None:
    from portability.events.dispatch import dispatch_events
    from workers.events import enqueue_deliveries

    dispatch_events(runtime.settings, runtime.sessions, enqueue_deliveries)


def _user_exports(runtime: Any) -> None:
    from portability.user_exports import user_export_housekeeping
    from workers.user_exports import enqueue_user_exports

    user_export_housekeeping(runtime.settings, runtime.sessions, enqueue_user_exports)


def _retention(runtime: Any) -> None:
    from portability.events.retention import purge_events
    from portability.history import apply_retention_policies

    apply_retention_policies(runtime.engine, runtime.settings)
    purge_events(runtime.engine, retention_days=runtime.settings.events_retention_days)
