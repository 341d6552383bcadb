"""Running one user export: claim it, stream the categories' snapshot reads into ZIP volumes
in the export bucket, then mark it ready (or failed, or back to queued for a retry).

Each category is read with the ``Source`` contract's ``read_state`` -- the same consistent
snapshot read a full replay delivers -- and its lines are written as they are. Reads run a few
batches ahead in their own threads and volumes upload from another (``_pipeline``). A retry starts
over under the same keys; volumes of an earlier, longer attempt are deleted at the end. The
worker reports progress and renews its lease about once a second; a cancel or delete seen
there stops it, and what it had written is deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from portability.categories import Category
from portability.db.base import utcnow
from portability.db.user_export_models import ExportStatus, UserExport
from portability.errors import (
    ConflictError,
    DestinationError,
    DestinationTransientError,
    PortabilityError,
    SourceError,
)
from portability.export._backoff import retry_delay
from portability.runtime import Runtime
from portability.sources.base import Source
from portability.user_exports import lifecycle
from portability.user_exports._archive import ArchivePlan, Section, write_archive
from portability.user_exports._bucket import ExportBucket, open_export_bucket
from portability.user_exports._pipeline import BackgroundUpload, PrefetchedRead
from portability.user_exports._readme import manifest, readme
from portability.user_exports._render import rendering_for
from portability.user_exports.housekeeping import discard_archive

__all__ = ["ExportOutcome", "ExportStoppedError", "run_user_export"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class ExportStoppedError(ConflictError):
    """The export was cancelled or deleted while it ran: stop and delete what was written."""


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    export_id: int
    status: str
    #: Seconds until the task should try again (a transient failure), else None.
    retry_in: float | None = None


@dataclass(frozen=True)
class _Claimed:
    user_id: str
    categories: list[Category]
    format: str
    created_at: datetime
    attempts: int


class _Progress:
    """Counts records and reports them, renewing the lease, at most every ``interval``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        export_id: int,
        attempt: int,
        lease: float,
        clock: Clock,
    ) -> None:
        self.sessions, self.export_id, self.lease, self.clock = sessions, export_id, lease, clock
        self.attempt = attempt
        self.records = 0
        self.interval = min(1.0, lease / 3)
        self._last = time.monotonic()

    def __call__(self, records: int) -> None:
        self.records += records
        if time.monotonic() - self._last >= self.interval:
            self.report()

    def report(self) -> None:
        self._last = time.monotonic()
        with self.sessions.begin() as session:
            still_running = lifecycle.renew_export(
                session,
                self.export_id,
                attempt=self.attempt,
                progress=self.records,
                now=self.clock(),
                lease=self.lease,
            )
        if not still_running:
            raise ExportStoppedError(
                f"export {self.export_id} was cancelled, deleted or taken over"
            )


def _sections(
    source: Source, user_id: str, categories: list[Category], batch_size: int, ahead: int
) -> Generator[Section, None, None]:
    """Each category's snapshot read in turn, the next ``ahead - 1`` already reading in their
    threads; every read is closed when the sections end, however they end."""
    started: list[PrefetchedRead] = []
    try:
        for index, category in enumerate(categories):
            while len(started) < min(len(categories), index + max(1, ahead)):
                started.append(
                    PrefetchedRead(source, user_id, categories[len(started)], batch_size)
                )
            yield Section(category, started[index].batches())
    finally:
        for read in started:
            read.close()


def run_user_export(
    runtime: Runtime,
    export_id: int,
    *,
    bucket: ExportBucket | None = None,
    clock: Clock = utcnow,
) -> ExportOutcome:
    """Run the export if it is due (a duplicate message finds it claimed and backs off)."""
    settings = runtime.settings
    with runtime.sessions.begin() as session:
        claimed = _claim(session, export_id, clock(), settings.lease_seconds)
        if not isinstance(claimed, _Claimed):
            return ExportOutcome(export_id, claimed)
    bucket = bucket or open_export_bucket(settings)
    progress = _Progress(
        runtime.sessions, export_id, claimed.attempts, settings.lease_seconds, clock
    )
    plan = ArchivePlan(
        rendering=rendering_for(claimed.format),
        readme=readme(claimed.categories, claimed.format, claimed.created_at),
        manifest=lambda files: manifest(
            export_id, claimed.categories, claimed.format, claimed.created_at, files
        ),
        modified_at=claimed.created_at,
        volume_bytes=settings.user_export_volume_bytes,
        open_volume=lambda n: BackgroundUpload(
            bucket.destination.open_upload(bucket.key(export_id, n))
        ),
        key_of=lambda n: bucket.key(export_id, n),
        on_records=progress,
    )
    sections = _sections(
        runtime.source,
        claimed.user_id,
        claimed.categories,
        settings.export_batch_size,
        settings.export_category_concurrency,
    )
    try:
        with closing(sections):
            volumes, members = write_archive(plan, sections)
    except ExportStoppedError:
        return _stopped(runtime, bucket, export_id, [])
    except (DestinationTransientError, SourceError) as exc:
        return _transient(runtime, export_id, claimed.attempts, exc, clock)
    except (PortabilityError, DestinationError) as exc:
        return _failed(runtime, bucket, export_id, str(exc), clock)
    except Exception as exc:
        log.exception("user export %s failed", export_id)
        return _failed(runtime, bucket, export_id, f"internal error ({type(exc).__name__})", clock)
    keys = [v.key for v in volumes]
    with runtime.sessions.begin() as session:
        finished = lifecycle.finish_export(
            session,
            export_id,
            attempt=claimed.attempts,
            keys=keys,
            sha256s=[v.sha256 for v in volumes],
            size=sum(v.size for v in volumes),
            records=sum(m.records for m in members),
            now=clock(),
            retention=timedelta(days=settings.user_export_retention_days),
        )
    if not finished:  # cancelled, deleted or taken over at the last moment
        return _stopped(runtime, bucket, export_id, keys)
    discard_archive(bucket, export_id, [], keep=set(keys))  # an earlier attempt's extra volumes
    return ExportOutcome(export_id, ExportStatus.READY.value)


def _claim(session: Session, export_id: int, now: datetime, lease: float) -> _Claimed | str:
    if not lifecycle.claim_export(session, export_id, now=now, lease=lease):
        row = session.get(UserExport, export_id)
        return row.status if row is not None else "missing"
    row = session.get(UserExport, export_id)
    assert row is not None
    session.refresh(row)
    return _Claimed(row.user_id, row.category_list, row.format, row.created_at, row.attempts)


def _stopped(
    runtime: Runtime, bucket: ExportBucket, export_id: int, keys: list[str]
) -> ExportOutcome:
    """Stopped from outside: delete what was written, unless another worker took the export
    over (it writes the same keys)."""
    status = _status(runtime, export_id)
    if status != ExportStatus.RUNNING.value:
        discard_archive(bucket, export_id, keys)
    return ExportOutcome(export_id, status)


def _status(runtime: Runtime, export_id: int) -> str:
    with runtime.sessions() as session:
        row = session.get(UserExport, export_id)
        return row.status if row is not None else "missing"


def _transient(
    runtime: Runtime, export_id: int, attempts: int, exc: PortabilityError, clock: Clock
) -> ExportOutcome:
    settings = runtime.settings
    if attempts >= settings.run_max_attempts:
        message = f"gave up after {attempts} attempts: {exc}"
        with runtime.sessions.begin() as session:
            lifecycle.fail_export(session, export_id, error=message, now=clock())
        return ExportOutcome(export_id, ExportStatus.FAILED.value)
    with runtime.sessions.begin() as session:
        lifecycle.requeue_export(session, export_id, error=str(exc), now=clock())
    delay = retry_delay(attempts, base=settings.retry_backoff_base, cap=settings.retry_backoff_max)
    return ExportOutcome(export_id, ExportStatus.QUEUED.value, retry_in=delay)


def _failed(
    runtime: Runtime, bucket: ExportBucket, export_id: int, message: str, clock: Clock
) -> ExportOutcome:
    with runtime.sessions.begin() as session:
        lifecycle.fail_export(session, export_id, error=message, now=clock())
    discard_archive(bucket, export_id, [])
    return ExportOutcome(export_id, ExportStatus.FAILED.value)
