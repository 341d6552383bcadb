"""The reconciler: re-send runs the broker may have lost.

The database is the source of truth; the broker only carries "run N is due". A run left
``queued`` for longer than ``settings.reconcile_after_seconds`` without being sent again in
that time (the scheduler crashed between commit and enqueue, the broker lost the message),
or ``running`` with a lapsed lease (its worker died), is enqueued again. Duplicates are
harmless: the worker's ``claim_run`` takes a run once and drops every other message for it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from portability.db.base import utcnow
from portability.db.engine import transaction
from portability.runs import mark_enqueued, stale_queued_runs
from schedules.runtime import SchedulerRuntime
from schedules.tick import EnqueueRuns

__all__ = ["reconcile_runs"]

log = logging.getLogger(__name__)

#: Upper bound on rounds per call, so a call ends even if runs keep lapsing meanwhile.
_MAX_ROUNDS = 100


def reconcile_runs(
    runtime: SchedulerRuntime,
    enqueue: EnqueueRuns,
    now: datetime | None = None,
    *,
    limit: int = 1000,
) -> int:
    """Enqueue stale runs again, ``limit`` at a time; returns how many were sent.

    Queued runs sent here are marked enqueued, so the next call leaves them alone for
    another threshold; a lapsed ``running`` run is sent once per call.
    """
    now = now or utcnow()
    older_than = runtime.settings.reconcile_after_seconds
    sent: set[int] = set()
    for _ in range(_MAX_ROUNDS):
        with transaction(runtime.sessions) as session:
            stale = stale_queued_runs(session, older_than_seconds=older_than, limit=limit, now=now)
        fresh = [run_id for run_id in stale if run_id not in sent]
        if not fresh:
            break
        enqueue(fresh)
        with transaction(runtime.sessions) as session:
            mark_enqueued(session, fresh, now=now)
        sent.update(fresh)
    if sent:
        log.warning("reconciler re-enqueued %d stale runs", len(sent))
    return len(sent)
