"""When a schedule should next be claimed: its cron fire plus a deterministic jitter.

Jitter spreads schedules that share a cron instant (a million ``@daily`` at midnight) over a
window instead of one second. Each schedule's offset is a hash of its id, so it is the same
on every fire and on every scheduler process, and it is bounded twice:

- by ``max_jitter_seconds`` (``PORTABILITY_SCHEDULER_MAX_JITTER_SECONDS``, default 900), and
- by a tenth of the gap to the following fire (``JITTER_FRACTION``), so a frequent schedule
  is never pushed near its next fire: 90 s at most for a 15-minute cron, 900 s for a daily one.

Jitter only delays (the offset is added), and applies to cron schedules only: a one-time
transfer is due at once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from portability.cron import iter_fires

if TYPE_CHECKING:
    from portability.db.models import Schedule

__all__ = ["JITTER_FRACTION", "Fire", "first_run_at", "jitter", "next_fire", "planned_run_at"]

#: Jitter never exceeds this share of the time between two consecutive fires.
JITTER_FRACTION = 0.1


class Fire(NamedTuple):
    """The next fire instant after some moment and the one that follows it (both UTC)."""

    at: datetime
    following: datetime


@lru_cache(maxsize=4096)
def next_fire(cron: str, timezone: str, after: datetime) -> Fire:
    """The first fire strictly after ``after`` and the one after it.

    Cached: in one tick every due schedule is advanced from the same ``now``, so the schedules
    sharing an expression and zone cost one cron computation between them.
    """
    fires = iter_fires(cron, timezone, after)
    first = next(fires)
    return Fire(first, next(fires))


def jitter(schedule_id: int, interval: timedelta, max_jitter_seconds: int) -> timedelta:
    """The schedule's fixed delay, in whole seconds, in ``[0, bound)``.

    ``bound = min(max_jitter_seconds, JITTER_FRACTION * interval)``.
    """
    bound = min(max_jitter_seconds, int(interval.total_seconds() * JITTER_FRACTION))
    if bound <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(schedule_id.to_bytes(8, "big", signed=True), digest_size=8).digest()
    return timedelta(seconds=int.from_bytes(digest, "big") * bound >> 64)


def planned_run_at(
    schedule_id: int, cron: str, timezone: str, after: datetime, *, max_jitter_seconds: int
) -> datetime:
    """When a cron schedule is next due: its first fire after ``after``, plus its jitter.

    A scheduler that was down passes ``after=now``: the missed fires collapse into the one run
    it creates now, and the schedule resumes at the next fire still ahead.
    """
    fire = next_fire(cron, timezone, after)
    return fire.at + jitter(schedule_id, fire.following - fire.at, max_jitter_seconds)


def first_run_at(schedule: Schedule, now: datetime, *, max_jitter_seconds: int = 0) -> datetime:
    """``next_run_at`` of a new schedule: now for a one-time transfer, else its next fire.

    The schedule must have its id (flushed) when it has a cron expression.
    """
    if schedule.cron is None:
        return now
    return planned_run_at(
        schedule.id, schedule.cron, schedule.timezone, now, max_jitter_seconds=max_jitter_seconds
    )
