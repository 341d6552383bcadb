"""The periodic side of user exports, run by beat and by the ``scheduler run`` loop:
publish queued exports (again, when a message was lost) and delete archives past their
retention, marking them ``expired``.

The database says what is due; the broker only carries "export N is due". Objects are
deleted after the transaction that marks them expired or deleted commits: a crash in between
leaves an object no row points at, which the bucket's lifecycle rule (see the README) removes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from portability.db.base import utcnow
from portability.errors import DestinationError
from portability.settings import Settings
from portability.user_exports import lifecycle
from portability.user_exports._bucket import ExportBucket, open_export_bucket

__all__ = ["EnqueueExports", "Housekeeping", "discard_archive", "user_export_housekeeping"]

log = logging.getLogger(__name__)

#: Publishes "export N is due" for each id.
EnqueueExports = Callable[[list[int]], None]


@dataclass(frozen=True, slots=True)
class Housekeeping:
    published: list[int]
    expired: list[int]


def discard_archive(
    bucket: ExportBucket, export_id: int, keys: Iterable[str], *, keep: set[str] | None = None
) -> None:
    """Delete ``keys`` and whatever else lies in the export's folder but ``keep`` (volumes
    of an interrupted attempt). Best effort: a failure is logged, never raised."""
    keep = keep or set()
    try:
        found = {info.key for info in bucket.destination.list_objects(bucket.folder(export_id))}
        for key in sorted((found | set(keys)) - keep):
            bucket.destination.delete_object(key)
    except DestinationError as exc:
        log.warning("could not delete the archive of user export %s: %s", export_id, exc)


def user_export_housekeeping(
    settings: Settings,
    sessions: sessionmaker[Session],
    enqueue: EnqueueExports,
    *,
    bucket: ExportBucket | None = None,
    now: datetime | None = None,
) -> Housekeeping:
    """One pass; does nothing while no export bucket is configured."""
    if not settings.user_export_bucket:
        return Housekeeping([], [])
    now = now or utcnow()
    with sessions() as session:
        due = lifecycle.unpublished_exports(
            session, now=now, resend_after=settings.reconcile_after_seconds
        )
    if due:
        enqueue(due)  # before marking: a lost publish is retried, a duplicate backs off
        with sessions.begin() as session:
            lifecycle.mark_published(session, due, now=now)
    with sessions.begin() as session:
        expired = lifecycle.due_to_expire(session, now=now)
    if expired:
        bucket = bucket or open_export_bucket(settings)
        for export_id, keys in expired:
            discard_archive(bucket, export_id, keys)
    return Housekeeping(due, [export_id for export_id, _ in expired])
