"""What processes report at their seams: metrics, heartbeat, the one log line.

``report_run`` is the worker's line and counts after each attempt of a run.

``SchedulerProbe`` is handed to ``SchedulerLoop`` and ``TickingScheduler``; they call it once
per seam (after a tick, after a reconcile, when a step fails). The gauges that need a query
(due backlog, delivery lag) or the broker (queue depth) are refreshed at most every
``gauge_seconds``, so a fast tick does not double the scheduler's load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from portability.backlog import delivery_lag, due_backlog, outbox_backlog
from portability.health import Heartbeat
from portability.logs import bound
from portability.metrics import Metrics, read_run_facts

if TYPE_CHECKING:
    from portability.events.send import DeliveryOutcome
    from portability.export import RunOutcome
    from portability.runtime import Runtime

__all__ = ["SchedulerProbe", "one_line", "report_delivery", "report_run"]

log = logging.getLogger("portability.scheduler")
run_log = logging.getLogger("portability.worker")

QueueDepths = Callable[[], Mapping[str, int | None]]


def one_line(exc: BaseException) -> str:
    """An error as one short line: its type and the first line of its message (a database
    error's message goes on with the statement; that is for the debug log)."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass
class SchedulerProbe:
    metrics: Metrics
    engine: Engine
    heartbeat: Heartbeat | None = None
    queue_depths: QueueDepths | None = None
    gauge_seconds: float = 15.0
    clock: Callable[[], float] = time.monotonic
    _next_gauges: float = field(default=0.0, init=False)

    def ticked(self, seconds: float, created: int, skipped: int, disabled: int) -> None:
        """After a tick that completed: its figures, the heartbeat, the gauges if due."""
        self.metrics.observe_tick(seconds, created, skipped, disabled)
        self.alive()
        if self.clock() >= self._next_gauges:
            self._next_gauges = self.clock() + self.gauge_seconds
            self.refresh_gauges()

    def alive(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.touch()

    def refresh_gauges(self) -> None:
        depths: Mapping[str, int | None] = {}
        if self.queue_depths is not None:
            try:
                depths = self.queue_depths()
            except Exception as exc:
                log.warning("queue depth unavailable: %s", one_line(exc))
        self.metrics.observe_state(
            backlog=due_backlog(self.engine),
            lag=delivery_lag(self.engine),
            queues=depths,
            outbox=outbox_backlog(self.engine),
        )

    def resent(self, count: int) -> None:
        if count:
            self.metrics.resent.inc(count)

    def failed(self, step: str, exc: BaseException) -> None:
        """One line per failure (the traceback at DEBUG only), counted by step; the process
        is still alive, so the heartbeat moves."""
        self.metrics.scheduler_failures.labels(step=step).inc()
        self.alive()
        log.error("scheduler %s failed, retrying at the next tick: %s", step, one_line(exc))
        log.debug("scheduler %s failure", step, exc_info=exc)


def report_run(runtime: Runtime, outcome: RunOutcome) -> None:
    """After an attempt: count it, and log one line naming the run, its status, records and
    bytes (Celery's own "Task … succeeded: 'failed'" line is silenced by ``logs.configure``)."""
    retrying = outcome.retry_in is not None
    try:
        facts = read_run_facts(runtime.engine, outcome.run_id)
    except Exception as exc:  # reporting must never change what the task does next
        run_log.warning(
            "run %s %s (not counted: %s)", outcome.run_id, outcome.status, one_line(exc)
        )
        return
    if facts is None:
        run_log.info("run %s: %s", outcome.run_id, outcome.status)
        return
    runtime.metrics.observe_run(facts, outcome.status, retrying=retrying)
    with bound(run_id=facts.run_id, app_id=facts.app_id):
        if retrying:
            run_log.info(
                "run %s will retry in %.1fs (%s)",
                facts.run_id,
                outcome.retry_in,
                facts.failure_reason or outcome.status,
            )
        elif outcome.status in {"succeeded", "failed", "cancelled"}:
            categories = ", ".join(f"{c} {r}" for c, (r, _) in sorted(facts.delivered.items()))
            run_log.info(
                "run %s %s: %d records, %d bytes%s%s",
                facts.run_id,
                outcome.status,
                facts.records,
                facts.bytes,
                f" ({categories})" if categories else "",
                f", reason {facts.failure_reason}" if facts.failure_reason else "",
            )
        else:
            run_log.info("run %s message %s: %s", facts.run_id, outcome.status, outcome.message)


def report_delivery(runtime: Runtime, outcome: DeliveryOutcome) -> None:
    """After a webhook attempt: count it (the events worker's seam). Counting never fails
    the task."""
    try:
        runtime.metrics.observe_delivery(outcome)
    except Exception as exc:
        run_log.warning("webhook delivery %s not counted: %s", outcome.delivery_id, one_line(exc))
