"""The standalone scheduler loop (``portability scheduler run``), for operators without beat.

It does what beat does: a tick every ``scheduler_tick_seconds``, the reconciler every
``max(30, reconcile_after_seconds // 2)`` seconds and the feed's retention every
``feed_retention_interval_seconds``; given ``enqueue_deliveries``, the events dispatcher every
``events_dispatch_interval_seconds`` (its pace is the tick's at most); given
``enqueue_user_exports``, the user exports' housekeeping (publish queued exports, delete expired
archives) every ``user_export_housekeeping_seconds``. Several loops (or loops
and beats) may run against one database at once: rows are claimed, not assumed.

Stopping: ``stop()`` (the first SIGINT/SIGTERM) is a warm stop — the tick in hand finishes
its current batch, commits and enqueues, then the loop returns. ``ColdStop`` (raised by the
second signal) abandons the batch in hand; its transaction rolls back and nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from portability.events.dispatch import EnqueueDeliveries, dispatch_events
from portability.events.retention import purge_events
from portability.user_exports import EnqueueExports, user_export_housekeeping
from schedules.reconcile import reconcile_runs
from schedules.runtime import SchedulerRuntime
from schedules.tick import EnqueueRuns, TickResult, run_tick

if TYPE_CHECKING:
    from portability.probes import SchedulerProbe

__all__ = ["ColdStop", "SchedulerLoop", "log_step_failure", "reconcile_interval"]

log = logging.getLogger(__name__)


class ColdStop(BaseException):
    """Stop now. A ``BaseException`` on purpose: the loop's error handling must not catch it."""


def log_step_failure(
    logger: logging.Logger, what: str, exc: BaseException, *, retry_in: float
) -> None:
    """One line per failed step (a database down for an hour must not print a traceback per
    tick); the traceback only at DEBUG level."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    logger.error("%s failed, retrying in %.1f s: %s: %s", what, retry_in, type(exc).__name__, first)
    logger.debug("%s failure", what, exc_info=exc)


def reconcile_interval(reconcile_after_seconds: int) -> float:
    """How often the reconciler runs: the beat entry's period, kept in one place."""
    return float(max(30, reconcile_after_seconds // 2))


class SchedulerLoop:
    """Tick, reconcile now and then, sleep; until ``stop()``."""

    def __init__(
        self,
        runtime: SchedulerRuntime,
        enqueue: EnqueueRuns,
        *,
        tick_seconds: float | None = None,
        on_tick: Callable[[TickResult], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        probe: SchedulerProbe | None = None,
        enqueue_deliveries: EnqueueDeliveries | None = None,
        enqueue_user_exports: EnqueueExports | None = None,
    ) -> None:
        settings = runtime.settings
        self._runtime = runtime
        self._enqueue = enqueue
        self._tick_seconds = tick_seconds or settings.scheduler_tick_seconds
        self._reconcile_seconds = reconcile_interval(settings.reconcile_after_seconds)
        self._on_tick = on_tick
        self._clock = clock
        self._probe = probe
        self._enqueue_deliveries = enqueue_deliveries
        self._enqueue_user_exports = enqueue_user_exports
        self._stopping = threading.Event()
        self.ticks = 0
        self.failures = 0

    @property
    def is_stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Warm stop: finish the batch in hand, then return from ``run``."""
        self._stopping.set()

    def run(self) -> None:
        next_reconcile = next_retention = next_dispatch = next_exports = self._clock()
        while not self.is_stopping:
            started = self._clock()
            self._guarded("tick", self._tick)
            if self._enqueue_deliveries is not None and self._clock() >= next_dispatch:
                self._guarded("events", self._dispatch)
                next_dispatch = (
                    self._clock() + self._runtime.settings.events_dispatch_interval_seconds
                )
            if self._enqueue_user_exports is not None and self._clock() >= next_exports:
                self._guarded("user exports", self._user_exports)
                next_exports = (
                    self._clock() + self._runtime.settings.user_export_housekeeping_seconds
                )
            if not self.is_stopping and self._clock() >= next_reconcile:
                self._guarded("reconcile", self._reconcile)
                next_reconcile = self._clock() + self._reconcile_seconds
            if not self.is_stopping and self._clock() >= next_retention:
                self._guarded("retention", self._retention)
                next_retention = (
                    self._clock() + self._runtime.settings.feed_retention_interval_seconds
                )
            self._stopping.wait(max(0.0, self._tick_seconds - (self._clock() - started)))

    def _tick(self) -> None:
        started = time.perf_counter()
        result = run_tick(self._runtime, self._enqueue, should_stop=self._stopping.is_set)
        self.ticks += 1
        if self._probe is not None:
            elapsed = time.perf_counter() - started
            self._probe.ticked(elapsed, result.created, result.skipped, result.disabled)
        if self._on_tick is not None:
            self._on_tick(result)

    def _dispatch(self) -> None:
        assert self._enqueue_deliveries is not None
        dispatch_events(self._runtime.settings, self._runtime.sessions, self._enqueue_deliveries)

    def _user_exports(self) -> None:
        assert self._enqueue_user_exports is not None
        user_export_housekeeping(
            self._runtime.settings, self._runtime.sessions, self._enqueue_user_exports
        )

    def _reconcile(self) -> None:
        sent = reconcile_runs(self._runtime, self._enqueue)
        if self._probe is not None:
            self._probe.resent(sent)

    def _retention(self) -> None:
        from portability.history import apply_retention_policies

        apply_retention_policies(self._runtime.engine, self._runtime.settings)
        purge_events(
            self._runtime.engine, retention_days=self._runtime.settings.events_retention_days
        )

    def _guarded(self, name: str, step: Callable[[], None]) -> None:
        """Run one step; an error (database or broker down) is logged, one line per failure,
        and retried next time, since a scheduler that exits on a blip stops every schedule."""
        try:
            step()
        except Exception as exc:
            self.failures += 1
            if self._probe is not None:
                self._probe.failed(name, exc)
            else:
                log_step_failure(log, f"scheduler {name}", exc, retry_in=self._tick_seconds)
