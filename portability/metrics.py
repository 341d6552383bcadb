"""Prometheus series, and the functions the engine and the scheduler call at their seams.

A ``Metrics`` owns its series on the registry it is given: nothing registers on import, and
two ``Metrics`` in one process (tests) never collide. Where values go depends on the process:

- Celery's prefork children write to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
  multiprocess mode, chosen by that variable at import); the worker's main process serves the
  sum of every child's files (``multiprocess_registry``);
- the scheduler loop and beat are single processes and serve their own registry;
- the API mounts ``metrics_app()`` at ``/metrics``.

Names are ``portability_*``; ``deploy/prometheus/alerts.yml`` and the Grafana dashboard use
them, and ``tests/unit/test_deploy.py`` holds them to what a registry exposes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_asgi_app,
    start_http_server,
)
from sqlalchemy import Engine, select

from portability.db.models import Run, RunCategory

if TYPE_CHECKING:
    from portability.backlog import Lag
    from portability.events.send import DeliveryOutcome

__all__ = [
    "Metrics",
    "RunFacts",
    "metrics_app",
    "multiprocess_registry",
    "read_run_facts",
    "serve",
]

_RUN_SECONDS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600)
_TICK_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_POST_SECONDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: From an event to its delivery: seconds when all is well, hours while a receiver is down.
_EVENT_SECONDS = (0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 72 * 3600)
#: Gauges set by one process at a time (scheduler, beat): in multiprocess mode the live
#: process's latest value is the one to show.
_GAUGE_MODE: Final = "livemostrecent"


class Metrics:
    """Every series of the system, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "portability_runs",
            "Runs that reached an end (succeeded, failed, cancelled), by failure reason.",
            ["status", "reason"],
            registry=r,
        )
        self.run_duration = Histogram(
            "portability_run_duration_seconds",
            "From a run's start to its end, by status.",
            ["status"],
            buckets=_RUN_SECONDS,
            registry=r,
        )
        self.records = Counter(
            "portability_delivered_records",
            "Records delivered (in manifested parts), per category.",
            ["category"],
            registry=r,
        )
        self.bytes = Counter(
            "portability_delivered_bytes",
            "Bytes of parts delivered, per category.",
            ["category"],
            registry=r,
        )
        self.retries = Counter(
            "portability_run_retries",
            "Runs sent back to the queue to try again, by error kind.",
            ["kind"],
            registry=r,
        )
        self.replays = Counter(
            "portability_replays",
            "Streams delivered as a full replay, by reason.",
            ["reason"],
            registry=r,
        )
        self.tick_duration = Histogram(
            "portability_scheduler_tick_seconds",
            "How long one scheduler tick took (claim, write runs, enqueue).",
            buckets=_TICK_SECONDS,
            registry=r,
        )
        self.tick_schedules = Counter(
            "portability_scheduler_schedules",
            "Due schedules handled by ticks: created a run, skipped a fire, disabled.",
            ["outcome"],
            registry=r,
        )
        self.scheduler_failures = Counter(
            "portability_scheduler_failures",
            "Scheduler steps (tick, reconcile, retention) that failed and will be retried.",
            ["step"],
            registry=r,
        )
        self.last_tick = Gauge(
            "portability_scheduler_last_tick_timestamp_seconds",
            "Unix time of the last tick that completed.",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.due_backlog = Gauge(
            "portability_scheduler_due_backlog",
            "Schedules due now and not yet claimed.",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.queue_depth = Gauge(
            "portability_queue_depth",
            "Messages waiting in a broker queue.",
            ["queue"],
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.resent = Counter(
            "portability_reconciler_resent",
            "Runs the reconciler enqueued again (lost message or dead worker).",
            registry=r,
        )
        self.lag = Gauge(
            "portability_delivery_lag_seconds",
            "How far the furthest-behind ongoing stream is behind the change feed.",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.lag_changes = Gauge(
            "portability_delivery_lag_changes",
            "Changes of the furthest-behind ongoing stream not delivered yet (an estimate, "
            "capped at a million).",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )
        self.webhook_attempts = Counter(
            "portability_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered, retry, failed (gave up), "
            "endpoint_disabled (not sent: its endpoint is disabled).",
            ["outcome"],
            registry=r,
        )
        self.webhook_attempt_duration = Histogram(
            "portability_webhook_attempt_seconds",
            "How long one webhook POST took, answered or not.",
            buckets=_POST_SECONDS,
            registry=r,
        )
        self.webhook_delay = Histogram(
            "portability_webhook_delivery_delay_seconds",
            "From an event to its successful delivery to an endpoint.",
            buckets=_EVENT_SECONDS,
            registry=r,
        )
        self.endpoints_disabled = Counter(
            "portability_webhook_endpoints_disabled",
            "Webhook endpoints disabled after failing for the whole retry window.",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "portability_events_outbox_backlog",
            "Events recorded and not dispatched to their endpoints yet.",
            registry=r,
            multiprocess_mode=_GAUGE_MODE,
        )

    # -- seams: the worker after a run, the scheduler after a tick ---------------------------

    def observe_run(self, facts: RunFacts, status: str, *, retrying: bool) -> None:
        """Count one attempt's end. ``status`` is the engine's outcome; a retry counts its kind,
        an end counts the run, its duration and what its streams delivered."""
        if retrying:
            self.retries.labels(kind=facts.failure_reason or "unknown").inc()
            return
        if status not in {"succeeded", "failed", "cancelled"}:
            return  # dropped, deferred, conflict: another message or worker owns the run
        reason = "none" if status == "succeeded" else (facts.failure_reason or "none")
        self.runs.labels(status=status, reason=reason).inc()
        if facts.seconds is not None:
            self.run_duration.labels(status=status).observe(facts.seconds)
        for category, (records, size) in facts.delivered.items():
            self.records.labels(category=category).inc(records)
            self.bytes.labels(category=category).inc(size)
        for reason_of_replay in facts.replays:
            self.replays.labels(reason=reason_of_replay).inc()

    def observe_tick(self, seconds: float, created: int, skipped: int, disabled: int) -> None:
        self.tick_duration.observe(seconds)
        self.last_tick.set_to_current_time()
        for outcome, count in (("created", created), ("skipped", skipped), ("disabled", disabled)):
            if count:
                self.tick_schedules.labels(outcome=outcome).inc(count)

    def observe_delivery(self, outcome: DeliveryOutcome) -> None:
        """Count one webhook attempt (nothing for a duplicate or early message)."""
        if outcome.result is None:
            return
        self.webhook_attempts.labels(outcome=outcome.result).inc()
        if outcome.attempt_seconds is not None:
            self.webhook_attempt_duration.observe(outcome.attempt_seconds)
        if outcome.delay_seconds is not None:
            self.webhook_delay.observe(outcome.delay_seconds)
        if outcome.disabled_endpoint:
            self.endpoints_disabled.inc()

    def observe_state(
        self, *, backlog: int, lag: Lag, queues: Mapping[str, int | None], outbox: int
    ) -> None:
        """The gauges read from the database (``portability.backlog``) and the broker."""
        self.due_backlog.set(backlog)
        self.outbox_backlog.set(outbox)
        self.lag.set(lag.seconds)
        self.lag_changes.set(lag.changes)
        for queue, depth in queues.items():
            if depth is not None:
                self.queue_depth.labels(queue=queue).set(depth)


@dataclass(frozen=True)
class RunFacts:
    """What a finished (or retrying) attempt left in the database, for metrics and logs."""

    run_id: int
    app_id: int
    status: str
    failure_reason: str | None
    records: int
    bytes: int
    seconds: float | None
    delivered: dict[str, tuple[int, int]] = field(default_factory=dict)
    replays: list[str] = field(default_factory=list)


def read_run_facts(engine: Engine, run_id: int) -> RunFacts | None:
    """Two small reads by primary key (the run, its categories)."""
    with engine.connect() as conn:
        run = conn.execute(
            select(
                Run.app_id,
                Run.status,
                Run.failure_reason,
                Run.records,
                Run.bytes,
                Run.started_at,
                Run.finished_at,
            ).where(Run.id == run_id)
        ).one_or_none()
        if run is None:
            return None
        rows = conn.execute(
            select(
                RunCategory.category,
                RunCategory.status,
                RunCategory.records,
                RunCategory.bytes,
                RunCategory.replay_reason,
            ).where(RunCategory.run_id == run_id)
        ).all()
    delivered = {r.category: (int(r.records), int(r.bytes)) for r in rows if r.status == "done"}
    replays = [r.replay_reason for r in rows if r.status == "done" and r.replay_reason]
    seconds = _seconds(run.started_at, run.finished_at)
    return RunFacts(
        run_id,
        int(run.app_id),
        str(run.status),
        run.failure_reason,
        int(run.records or 0),
        int(run.bytes or 0),
        seconds,
        delivered,
        replays,
    )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


# -- exposition ------------------------------------------------------------------------------


def multiprocess_registry() -> CollectorRegistry:
    """A registry summing every process's files in ``PROMETHEUS_MULTIPROC_DIR`` (the worker's
    main process serves this one)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def serving_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What a process should serve: the multiprocess sum when that mode is on, else its own."""
    return multiprocess_registry() if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else own


def serve(port: int, registry: CollectorRegistry, addr: str = "0.0.0.0") -> Callable[[], None]:  # noqa: S104
    """Serve ``/metrics`` on ``port`` in a daemon thread; returns a function stopping it."""
    server, thread = start_http_server(port, addr=addr, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def metrics_app(registry: CollectorRegistry | None = None, *, engine: Engine | None = None) -> Any:
    """An ASGI app serving ``/metrics`` for the API: mount it at ``/metrics``.

    ``registry`` defaults to the multiprocess sum when ``PROMETHEUS_MULTIPROC_DIR`` is set
    (several API processes), else a registry of its own. With ``engine``, the due backlog and
    the delivery lag are computed when scraped (``portability.backlog.StateCollector``, at most
    every 15 s), so the API shows how far behind the system is.
    """
    if registry is None:
        registry = serving_registry(CollectorRegistry())
    if engine is not None:
        from portability.backlog import StateCollector

        registry.register(StateCollector(engine))
    return make_asgi_app(registry=registry)


def mark_process_dead(pid: int) -> None:
    """Drop a dead child's live gauges (``livemostrecent``) from the multiprocess files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
