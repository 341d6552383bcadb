"""Run history retention: delete finished runs older than ``run_history_days``.

On PostgreSQL, where history is partitioned by month (``portability.db.partitions``), a month
whose every run ended before the cutoff goes at once (``DETACH`` + ``DROP``); what is left
older than the cutoff (the boundary month, a month holding a run still open, the DEFAULT
partition) goes by the batch deletes below, as on SQLite.

Bounded work: each batch is its own short transaction deleting at most ``batch`` runs (their
``run_categories`` first), oldest ``finished_at`` first through its index, and a call stops
after ``max_batches`` so that the scheduler step that calls it stays short; the next call
goes on. Only ended runs (succeeded, failed, cancelled) are touched. A schedule whose last run
was deleted treats it as finished, which it was.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from portability.db.base import utcnow
from portability.db.models import Run, RunCategory, RunStatus
from portability.db.partitions import maintain_run_partitions
from portability.settings import Settings

__all__ = ["apply_retention_policies", "prune_run_history"]

log = logging.getLogger("portability.history")

_ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def prune_run_history(
    engine: Engine,
    *,
    older_than_days: int,
    batch: int = 5000,
    max_batches: int = 20,
    now: datetime | None = None,
) -> int:
    """Delete up to ``batch * max_batches`` ended runs finished before the cutoff; returns
    how many were deleted."""
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    oldest = (
        select(Run.id, Run.queued_at)
        .where(Run.finished_at < cutoff, Run.status.in_(_ENDED))
        .order_by(Run.finished_at)
        .limit(batch)
    )
    deleted = 0
    for _ in range(max_batches):
        with engine.begin() as conn:
            rows = conn.execute(oldest).all()
            ids = [row.id for row in rows]
            if ids:
                # The batch's range of queued_at lets PostgreSQL look only in its months.
                first, last = min(r.queued_at for r in rows), max(r.queued_at for r in rows)
                conn.execute(
                    delete(RunCategory).where(
                        RunCategory.run_id.in_(ids), RunCategory.run_queued_at.between(first, last)
                    )
                )
                conn.execute(delete(Run).where(Run.id.in_(ids), Run.queued_at.between(first, last)))
        deleted += len(ids)
        if len(ids) < batch:
            break
    if deleted:
        log.info("run history: %d runs finished before %s deleted", deleted, cutoff.date())
    return deleted


def apply_retention_policies(engine: Engine, settings: Settings) -> None:
    """The scheduler's retention step: the change feed's, then run history's partitions (the
    coming months created, expired ones dropped; PostgreSQL only), then its batch deletes if a
    retention is set."""
    from portability.sources.retention import apply_retention

    apply_retention(engine, retention_days=settings.feed_retention_days)
    maintain_run_partitions(engine, older_than_days=settings.run_history_days)
    if settings.run_history_days is not None:
        prune_run_history(
            engine, older_than_days=settings.run_history_days, batch=settings.run_history_batch
        )
