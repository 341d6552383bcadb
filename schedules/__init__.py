"""The thin scheduler: claim due schedules from an index, create their runs, enqueue them.

- ``run_tick`` — one tick (the beat entry ``portability.scheduler_tick`` and the standalone
  loop both call it); safe with several schedulers at once.
- ``reconcile_runs`` — re-send runs the broker may have lost.
- ``SchedulerLoop`` — ``portability scheduler run``: ticks and reconciles without beat.
- cron arithmetic (``portability.cron``) and jitter (``portability.timing``) live in the core,
  which validates schedules with them; the scheduler only uses them.
"""

from __future__ import annotations

from schedules.reconcile import reconcile_runs
from schedules.runtime import DatabaseRuntime, SchedulerRuntime
from schedules.tick import EnqueueRuns, TickResult, run_tick

__all__ = [
    "DatabaseRuntime",
    "EnqueueRuns",
    "SchedulerRuntime",
    "TickResult",
    "reconcile_runs",
    "run_tick",
]
