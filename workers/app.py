"""Celery application and its tasks.

Task settings fit long, idempotent exports: late acknowledgement (a message is acked only
after the run is recorded), re-queue when a worker process dies, prefetch of one, a broker
visibility timeout longer than the longest run, hard and soft time limits. A run id is the
only argument; the database says the rest, and a duplicate message finds the run already
claimed and is dropped.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from celery import Celery, Task
from kombu.exceptions import OperationalError as BrokerOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Engine

from portability.dispatch import EnqueueRuns
from portability.errors import BrokerUnavailableError
from portability.settings import Settings
from workers._publish import EXPORT_TASK, publish_runs, queue_depths, worker_queue_names

__all__ = [
    "EXPORT_TASK",
    "app",
    "celery_enqueue",
    "create_app",
    "enqueue_run",
    "enqueue_runs",
    "runtime",
    "scheduler_probe",
    "settings_of",
]


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.resolved_broker_url
    transport_options: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout,
        # Sweep for a dead worker's unacknowledged messages every interval (kombu's default
        # throttling makes it ~100 s); the scan is one ZRANGE on a small index.
        "unacked_restore_interval": settings.broker_restore_interval,
        "unacked_restore_throttle": 1,
    }
    if broker.startswith("filesystem"):
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options.update(
            data_folder_in=str(folder / "queue"),
            data_folder_out=str(folder / "queue"),
            processed_folder=str(folder / "processed"),
            control_folder=str(folder / "control"),
            store_processed=False,
        )
    return {
        "broker_url": broker,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": max(1, settings.task_time_limit - 60),
        "task_default_queue": "portability",
        "worker_hijack_root_logger": False,
        # A pool process that grew past this (a fragmented heap after a huge export) is
        # replaced once its task ends; Celery counts KiB.
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_mib * 1024,
        "beat_scheduler": "workers.beat:TickingScheduler",
        "beat_schedule": {},
        "beat_schedule_filename": str((settings.data_dir / "celerybeat-schedule").resolve()),
    }


# Each app's Settings, kept beside the app rather than on ``app.conf``: Celery shows its
# configuration to anyone with access to the broker (``celery inspect conf``, Flower, ``celery
# report``) and masks values by key name only, so nothing of ours goes there but what Celery
# itself needs (the broker URL, which it masks).
_SETTINGS: weakref.WeakKeyDictionary[Celery, Settings] = weakref.WeakKeyDictionary()


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    celery = Celery("portability")
    celery.conf.update(celery_config(settings))
    _SETTINGS[celery] = settings
    from workers._process import install

    install(celery)
    return celery


def settings_of(celery: Celery) -> Settings:
    """The settings ``celery`` was created with."""
    return _SETTINGS[celery]


app = create_app()

_RUNTIME: dict[int, Any] = {}


def runtime() -> Any:
    """This worker process's Runtime, built on first use after fork (never in the parent)."""
    from portability.runtime import Runtime

    pid = os.getpid()
    if pid not in _RUNTIME:
        _RUNTIME.clear()
        _RUNTIME[pid] = Runtime.from_settings(settings_of(app))
    return _RUNTIME[pid]


@app.task(bind=True, name=EXPORT_TASK, max_retries=None)  # type: ignore[untyped-decorator,unused-ignore]
def export_run(self: Task, run_id: int) -> str:
    """Execute one run; the engine decides done, failed or "retry in N seconds"."""
    from portability.export import execute_run
    from portability.probes import report_run

    outcome = execute_run(runtime(), run_id)
    report_run(runtime(), outcome)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


def celery_enqueue(settings: Settings, engine: Any = None) -> EnqueueRuns:
    """The ``EnqueueRuns`` of ``portability.dispatch`` for the broker of ``settings``; given the
    ``engine`` to look the runs' apps up, each run goes to its app's export queue.

    A broker that cannot be reached raises ``BrokerUnavailableError`` (the caller's runs are
    committed and stay queued for the reconciler), never a kombu error.
    """
    celery = create_app(settings)

    def enqueue(run_ids: list[int]) -> None:
        _publish(celery, run_ids, engine)

    return enqueue


def enqueue_run(run_id: int) -> None:
    enqueue_runs([run_id])


def enqueue_runs(run_ids: Iterable[int]) -> None:
    """Publish "run N is due" for each id on its app's export queue (see ``workers._publish``)."""
    _publish(app, list(run_ids), runtime().engine)


def _publish(celery: Celery, run_ids: list[int], engine: Any = None) -> None:
    from workers._publish import publish_routed

    try:
        if engine is None:
            publish_runs(celery, run_ids)
        else:
            publish_routed(celery, engine, run_ids, queues=settings_of(celery).export_queues)
    except (
        BrokerOperationalError,
        RedisConnectionError,
        RedisTimeoutError,
        OSError,
    ) as exc:
        raise BrokerUnavailableError(
            f"the broker at {_safe_broker(celery.conf.broker_url)} cannot be reached ({exc})"
        ) from exc


def _safe_broker(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def scheduler_probe(settings: Settings, engine: Engine) -> tuple[Any, Callable[[], None]]:
    """The standalone scheduler's probe (metrics, heartbeat, queue depths) and a function
    stopping its ``/metrics`` server (a no-op without ``scheduler_metrics_port``)."""
    from portability.health import Heartbeat
    from portability.metrics import Metrics, serve
    from portability.probes import SchedulerProbe

    celery = create_app(settings)
    names = worker_queue_names(celery, settings.export_queues)
    metrics = Metrics()
    probe = SchedulerProbe(
        metrics,
        engine,
        heartbeat=Heartbeat(settings.resolved_health_dir, "scheduler"),
        queue_depths=lambda: queue_depths(celery, names),
    )
    if settings.scheduler_metrics_port is None:
        return probe, lambda: None
    return probe, serve(settings.scheduler_metrics_port, metrics.registry, settings.metrics_addr)


# The webhook delivery task registers itself on this app (its own queue: workers/events.py).
import workers.events  # noqa: E402, F401

# The "download your data" task too (its own queue: workers/user_exports.py).
from workers import user_exports as _user_exports  # noqa: E402, F401
