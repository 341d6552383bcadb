"""The scheduler loop with a failing database: one line per failure, no traceback, counted,
and the heartbeat still moves (the process is alive; the failure is an alert of its own)."""

from __future__ import annotations

import logging
import threading

from portability.health import Heartbeat
from portability.metrics import Metrics
from portability.probes import SchedulerProbe
from portability.settings import Settings
from schedules import DatabaseRuntime
from schedules.loop import SchedulerLoop
from tests.fixtures.workers import wait_until

#: Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"


def test_a_failing_database_logs_one_line_per_failure_and_the_heartbeat_moves(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path, database_url=UNREACHABLE, pseudonym_key="k" * 32)
    runtime = DatabaseRuntime.from_settings(settings)
    metrics = Metrics()
    heartbeat = Heartbeat(tmp_path / "health", "scheduler")
    probe = SchedulerProbe(metrics, runtime.engine, heartbeat=heartbeat)
    loop = SchedulerLoop(runtime, lambda ids: None, tick_seconds=0.05, probe=probe)
    caplog.set_level(logging.INFO)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        wait_until(lambda: loop.failures >= 3, timeout=30, what="three failed steps")
    finally:
        loop.stop()
        thread.join(timeout=30)
        runtime.close()

    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == loop.failures
    assert [r.exc_info for r in failures] == [None] * len(failures)
    assert all("\n" not in r.getMessage() for r in failures)
    assert all(r.getMessage().startswith("scheduler ") for r in failures)
    ticks = metrics.registry.get_sample_value(
        "portability_scheduler_failures_total", {"step": "tick"}
    )
    assert ticks is not None and ticks >= 2
    assert heartbeat.path.exists()
