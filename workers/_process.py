"""What a worker or beat process sets up around Celery: logs, queues, metrics, heartbeat.

Connected once per app by ``install`` (from ``create_app``); each handler acts only for the
apps created there. Signals, in the order a worker meets them:

- ``setup_logging``: our JSON or text lines replace Celery's handlers (``portability.logs``);
- ``celeryd_init``: the worker also consumes the export, events and housekeeping queues
  (``-Q`` still narrows it, since Celery selects from this list afterwards);
- ``worker_init`` (main process, before the pool forks): empty ``PROMETHEUS_MULTIPROC_DIR``
  of a previous life and serve ``/metrics`` on ``PORTABILITY_WORKER_METRICS_PORT``, summing
  every pool process's files;
- the ``HeartbeatFile`` step: the main process's event loop touches ``worker.heartbeat``
  every ``PORTABILITY_HEARTBEAT_SECONDS`` (a blocked loop stops touching it);
- ``worker_process_shutdown``: a pool process's live gauges are dropped from the files;
- ``beat_init``: beat serves its own ``/metrics`` on ``PORTABILITY_SCHEDULER_METRICS_PORT``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps, signals

__all__ = ["install"]

log = logging.getLogger("portability.worker")

_STOPPERS: list[Any] = []


def install(app: Celery) -> None:
    app.steps["worker"].add(HeartbeatFile)
    signals.setup_logging.connect(_setup_logging, weak=False, dispatch_uid="portability-logs")
    signals.celeryd_init.connect(_add_queues, weak=False, dispatch_uid="portability-queues")
    signals.worker_init.connect(_serve_worker_metrics, weak=False, dispatch_uid="portability-wm")
    signals.worker_process_shutdown.connect(
        _child_gone, weak=False, dispatch_uid="portability-child"
    )
    signals.beat_init.connect(_serve_beat_metrics, weak=False, dispatch_uid="portability-bm")


def _settings(app: Any) -> Any:
    from workers.app import _SETTINGS

    return _SETTINGS.get(app)


def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    from portability.logs import configure
    from workers.app import app, settings_of

    settings = settings_of(app)
    configure(settings.log_format, loglevel or settings.log_level)


def _add_queues(sender: Any = None, instance: Any = None, **_: Any) -> None:
    settings = _settings(getattr(instance, "app", None))
    if settings is None:
        return
    from workers._publish import worker_queue_names

    queues = instance.app.amqp.queues
    for name in worker_queue_names(instance.app, settings.export_queues):
        queues.select_add(name)  # consumed unless -Q names others (selected after this)


def _serve_worker_metrics(sender: Any = None, **_: Any) -> None:
    settings = _settings(getattr(sender, "app", None))
    if settings is None or settings.worker_metrics_port is None:
        return
    from portability.metrics import Metrics, serve, serving_registry

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        for stale in Path(folder).glob("*.db"):  # a previous worker's counters
            stale.unlink(missing_ok=True)
    else:
        log.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: /metrics shows only the main process, not "
            "the runs of its pool processes"
        )
    registry = serving_registry(Metrics().registry)
    _STOPPERS.append(serve(settings.worker_metrics_port, registry, settings.metrics_addr))
    log.info("worker metrics on port %s", settings.worker_metrics_port)


def _child_gone(pid: int | None = None, **_: Any) -> None:
    from portability.metrics import mark_process_dead

    mark_process_dead(pid or os.getpid())


def _serve_beat_metrics(sender: Any = None, **_: Any) -> None:
    settings = _settings(getattr(sender, "app", None))
    if settings is None or settings.scheduler_metrics_port is None:
        return
    from portability.metrics import serve, serving_registry
    from workers.app import runtime

    registry = serving_registry(runtime().metrics.registry)
    _STOPPERS.append(serve(settings.scheduler_metrics_port, registry, settings.metrics_addr))
    log.info("beat metrics on port %s", settings.scheduler_metrics_port)


class HeartbeatFile(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touch ``worker.heartbeat`` from the worker's own timer (see the module's docstring)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._timer: Any = None

    def start(self, worker: Any) -> None:
        settings = _settings(worker.app)
        if settings is None:
            return
        from portability.health import Heartbeat

        heartbeat = Heartbeat(settings.resolved_health_dir, "worker")
        heartbeat.touch()
        self._timer = worker.timer.call_repeatedly(settings.heartbeat_seconds, heartbeat.touch)

    def stop(self, worker: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
