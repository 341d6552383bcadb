"""Placeholder: replaced by the scheduler work."""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from portability.db.models import Schedule


def first_run_at(schedule: Schedule, now: datetime, *, max_jitter_seconds: int = 0) -> datetime:
    if schedule.cron is None:
        return now
    result: datetime = croniter(schedule.cron, now).get_next(datetime)
    return result
