"""Feed retention: delete ``platform_changes`` rows older than the retention window.

Age is measured by transaction, not by the rows' own timestamps: every run of the task
records a mark (the feed position's ``xmin`` and the time), and once a mark is older than
``retention_days`` it becomes the horizon: every transaction below its ``xmin`` had finished
when it was taken, so their rows are at least that old. Rows below the horizon are deleted in
bounded batches, each its own short transaction (no long lock, no long snapshot).

A stream whose position does not see every transaction below the horizon may have missed a
deleted row: its next delivery is a full replay with the reason ``behind_retention`` (see
``portability.export._plan``), never a silent gap. The horizon is committed before any row is
deleted, so a stream that checks meanwhile already sees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, text, update

from portability.db.base import utcnow
from portability.db.models import FeedMark
from portability.sources.sql import SqlChangeFeed

__all__ = ["RetentionReport", "apply_retention"]

log = logging.getLogger("portability.retention")

_DELETE_BATCH = text(
    "DELETE FROM platform_changes WHERE position IN"
    " (SELECT position FROM platform_changes WHERE txid < :horizon LIMIT :batch)"
)


@dataclass(frozen=True)
class RetentionReport:
    horizon: int | None
    deleted: int
    batches: int


def apply_retention(
    engine: Engine,
    *,
    retention_days: int,
    batch_size: int = 5_000,
    max_batches: int | None = None,
    now: datetime | None = None,
) -> RetentionReport:
    """Mark the feed now, move the horizon to the newest mark past the window, and delete the
    rows below it, ``batch_size`` at a time (at most ``max_batches``, then the next run goes
    on: the work per call is bounded)."""
    now = now or utcnow()
    position = SqlChangeFeed(engine).position()
    with engine.begin() as conn:
        conn.execute(
            insert(FeedMark).values(taken_at=now, snapshot_xmin=position.xmin, is_horizon=False)
        )
        due = conn.scalar(
            select(func.max(FeedMark.id)).where(
                FeedMark.taken_at <= now - timedelta(days=retention_days)
            )
        )
        if due is not None:
            conn.execute(update(FeedMark).where(FeedMark.id == due).values(is_horizon=True))
            # Older marks are spent: the newest horizon covers them.
            conn.execute(delete(FeedMark).where(FeedMark.id < due))
        horizon = conn.scalar(select(func.max(FeedMark.snapshot_xmin)).where(FeedMark.is_horizon))
    if horizon is None:
        return RetentionReport(None, 0, 0)
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        with engine.begin() as conn:
            removed = conn.execute(_DELETE_BATCH, {"horizon": horizon, "batch": batch_size})
        batches += 1
        deleted += removed.rowcount
        if removed.rowcount < batch_size:
            break
    if deleted:
        log.info("retention: %d feed rows below transaction %d deleted", deleted, horizon)
    return RetentionReport(int(horizon), deleted, batches)
