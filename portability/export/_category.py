"""Exporting one category of one run: plan, stream parts, write the manifest, advance.

Every step is safe to repeat. The watermark range is fixed in ``run_categories`` at the first
attempt, so a retry rewrites byte-identical parts under the same keys; the manifest is written
last and conditionally; the checkpoint moves only after the manifest exists, in the same
transaction as the category's result. If a previous attempt wrote the manifest and died before
its commit, the manifest is adopted instead of written again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portability.categories import Category
from portability.db.base import utcnow
from portability.db.engine import relax_durability
from portability.db.models import Checkpoint, Run, RunCategory
from portability.destinations.base import Destination
from portability.errors import ConflictError, IntegrityError, ObjectExistsError
from portability.export import _checkpoints
from portability.export._hooks import ExportHooks
from portability.export._parts import PartWriter
from portability.manifest import CheckpointRange, Manifest, PartEntry, manifest_key, part_key
from portability.runs import renew_lease as renew_run_lease
from portability.runtime import Runtime
from portability.sources.base import TOMBSTONE_END

__all__ = ["CategoryJob", "export_category"]

#: Renew leases at most this often while streaming (well inside any sane lease).
_RENEW_EVERY_SECONDS = 2.0


@dataclass(frozen=True)
class CategoryJob:
    run_id: int
    app_id: int
    authorization_id: int
    user_id: str
    category: Category
    categories: list[str]
    stream: str
    compression: str
    started_at: datetime
    #: The source's watermark, read once per run: an upper bound taken a moment earlier is
    #: just as safe, and saves a round trip per category.
    watermark: int


def export_category(
    runtime: Runtime,
    job: CategoryJob,
    destination: Destination,
    check_consent: ConsentCheck,
    hooks: ExportHooks,
) -> RunCategory:
    """Deliver one category; returns its finished ``run_categories`` row."""
    settings = runtime.settings
    with runtime.sessions.begin() as session:
        checkpoint = _checkpoints.acquire_lease(
            session, job.authorization_id, job.category, job.run_id, settings.lease_seconds
        )
        mine = session.get(RunCategory, (job.run_id, job.category.value))
        if mine is not None and mine.status in {"done", "empty"}:
            return mine
        seen: _Seen | None = _Seen(
            checkpoint.sequence + 1, checkpoint.watermark, checkpoint.is_reset_pending, mine
        )
    if checkpoint.planned_sequence > checkpoint.sequence:
        # Only while a planned delivery is pending can a manifest lie beyond the checkpoint.
        _adopt_written_manifests(runtime, job, destination)
        seen = None
    row = _plan(runtime, job, seen)
    if row.status in {"done", "empty"}:
        return row
    assert row.from_watermark is not None and row.to_watermark is not None
    assert row.sequence is not None

    parts = _write_parts(runtime, job, destination, row, check_consent, hooks)
    manifest = Manifest(
        run_id=job.run_id,
        app_id=job.app_id,
        authorization_id=job.authorization_id,
        user_id=job.user_id,
        category=job.category.value,
        categories=job.categories,
        sequence=row.sequence,
        checkpoint=CheckpointRange(**{"from": row.from_watermark, "to": row.to_watermark}),
        reset=row.is_reset,
        compression=job.compression,
        parts=parts,
        records=sum(p.records for p in parts),
        bytes=sum(p.bytes for p in parts),
        started_at=job.started_at,
        created_at=utcnow(),
    )
    check_consent()  # last look before the manifest makes the delivery visible
    key = manifest_key(job.stream, row.sequence)
    _put_manifest(destination, key, manifest)
    hooks.after_manifest(key)
    hooks.before_checkpoint_commit(job.category.value)
    return _commit(runtime, job, manifest, key)


class ConsentCheck:
    """Re-checks the grant before every batch; renews the leases every couple of seconds.

    The consent check is a few primary-key reads, cheap next to a batch of thousands of
    records, and it is what bounds how much is written after a revocation: nothing.
    """

    def __init__(self, runtime: Runtime, job_run_id: int, check: Callable[[Session], None]) -> None:
        self._runtime = runtime
        self._run_id = job_run_id
        self._check = check
        self._renewed = time.monotonic()  # the claim and the category lease are fresh
        self.category: tuple[int, str] | None = None

    def __call__(self, *, renew: bool = True) -> None:
        settings = self._runtime.settings
        now = time.monotonic()
        with self._runtime.sessions.begin() as session:
            self._check(session)
            if not renew and now - self._renewed < _RENEW_EVERY_SECONDS:
                return
            self._renewed = now
            relax_durability(session)
            renew_run_lease(session, self._run_id, lease_seconds=settings.lease_seconds)
            if self.category is not None:
                _checkpoints.renew_lease(
                    session, *self.category, self._run_id, settings.lease_seconds
                )


def _checkpoint(session: Session, job: CategoryJob) -> Checkpoint:
    return session.scalars(
        select(Checkpoint)
        .where(
            Checkpoint.authorization_id == job.authorization_id,
            Checkpoint.category == job.category.value,
        )
        .execution_options(populate_existing=True)
    ).one()


def _adopt_written_manifests(runtime: Runtime, job: CategoryJob, destination: Destination) -> None:
    """A manifest beyond the checkpoint means an attempt died between manifest and commit:
    the delivery is visible to consumers, so the checkpoint must catch up to it."""
    while True:
        with runtime.sessions.begin() as session:
            checkpoint = _checkpoint(session, job)
            sequence, watermark = checkpoint.sequence + 1, checkpoint.watermark
            if checkpoint.planned_sequence < sequence:
                return  # no delivery was planned beyond the checkpoint: nothing to look for
        key = manifest_key(job.stream, sequence)
        if destination.head_object(key) is None:
            return
        written = Manifest.from_json(destination.get_object(key))
        if written.checkpoint.from_ != watermark and not written.reset:
            raise IntegrityError(
                f"manifest {key} starts at {written.checkpoint.from_} but the checkpoint is at "
                f"{watermark}; reset the checkpoint of {job.category} to recover"
            )
        with runtime.sessions.begin() as session:
            _checkpoints.advance(
                session,
                job.authorization_id,
                job.category.value,
                job.run_id,
                from_watermark=watermark,
                to_watermark=written.checkpoint.to,
                sequence=sequence,
            )
            if written.run_id == job.run_id:
                _record_result(session, job, written, key)


@dataclass(frozen=True)
class _Seen:
    """The checkpoint and this run's row as read under the lease (saves a round trip)."""

    sequence: int
    watermark: int
    is_reset: bool
    row: RunCategory | None


def _plan(runtime: Runtime, job: CategoryJob, seen: _Seen | None) -> RunCategory:
    """Fix the watermark range of this delivery, reusing a previous attempt's when still valid.

    The source is asked outside any transaction of ours: on SQLite a transaction holds the
    write lock, and the feed reads through a connection of its own.
    """
    key = (job.run_id, job.category.value)
    if seen is None:
        with runtime.sessions.begin() as session:
            checkpoint = _checkpoint(session, job)
            seen = _Seen(
                checkpoint.sequence + 1,
                checkpoint.watermark,
                checkpoint.is_reset_pending,
                session.get(RunCategory, key),
            )
    row, sequence, watermark, is_reset = seen.row, seen.sequence, seen.watermark, seen.is_reset
    if row is not None and (
        row.status in {"done", "empty"}
        or (row.from_watermark == watermark and row.sequence == sequence)
    ):
        return row  # finished, or a retry: same range, same keys, same bytes
    upper = job.watermark
    has_changes = runtime.source.has_changes(job.user_id, job.category, watermark, upper)
    with runtime.sessions.begin() as session:
        row = session.get(RunCategory, key) or RunCategory(run_id=job.run_id, category=key[1])
        session.add(row)
        row.from_watermark = watermark  # a checkpoint reset sets it back to 0
        row.to_watermark = upper
        row.sequence = sequence
        row.is_reset = is_reset
        row.status = "planned" if has_changes else "empty"
        if has_changes:  # durable: it tells a later run to look for this manifest
            _checkpoints.mark_planned(session, job.authorization_id, job.category.value, sequence)
        else:
            relax_durability(session)
        session.flush()
        return row


def _write_parts(
    runtime: Runtime,
    job: CategoryJob,
    destination: Destination,
    row: RunCategory,
    check_consent: ConsentCheck,
    hooks: ExportHooks,
) -> list[PartEntry]:
    assert row.from_watermark is not None and row.to_watermark is not None
    settings = runtime.settings
    max_records = settings.export_part_max_records
    parts: list[PartEntry] = []
    writer: PartWriter | None = None
    first_batch = True

    def open_part() -> PartWriter:
        key = part_key(
            job.stream, row.from_watermark or 0, row.to_watermark or 0, len(parts), job.compression
        )
        return PartWriter(destination, key, job.compression)

    try:
        for batch in runtime.source.read(
            job.user_id,
            job.category,
            row.from_watermark,
            row.to_watermark,
            settings.export_batch_size,
        ):
            hooks.between_batches(job.category.value)
            if not first_batch:  # the first is covered by the check that opened the category
                check_consent(renew=False)
            first_batch = False
            body, records, deletes = batch.body, batch.records, batch.deletes
            while records:
                if writer is None:
                    writer = open_part()
                room = max_records - writer.records
                if records <= room:
                    writer.write(body, records, deletes)
                    records = 0
                else:  # the part fills up inside this batch: cut it after `room` records
                    cut = _after_nth_newline(body, room)
                    head, body = body[:cut], body[cut:]
                    head_deletes = head.count(TOMBSTONE_END)
                    writer.write(head, room, head_deletes)
                    records, deletes = records - room, deletes - head_deletes
                if writer.records >= max_records:
                    parts.append(writer.close())
                    hooks.after_part(writer.key)
                    writer = None
        if writer is not None:
            parts.append(writer.close())
            hooks.after_part(writer.key)
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return parts


def _after_nth_newline(body: bytes, n: int) -> int:
    """Offset just past the ``n``-th record of a JSON Lines block."""
    end = 0
    for _ in range(n):
        end = body.index(b"\n", end) + 1
    return end


def _put_manifest(destination: Destination, key: str, manifest: Manifest) -> None:
    try:
        destination.put_object(key, manifest.to_json(), if_none_match=True)
    except ObjectExistsError:
        existing = Manifest.from_json(destination.get_object(key))
        if not existing.same_delivery(manifest):
            raise ConflictError(
                f"manifest {key} was written by run {existing.run_id} for another range"
            ) from None


def _commit(runtime: Runtime, job: CategoryJob, manifest: Manifest, key: str) -> RunCategory:
    with runtime.sessions.begin() as session:
        _checkpoints.advance(
            session,
            job.authorization_id,
            job.category.value,
            job.run_id,
            from_watermark=manifest.checkpoint.from_,
            to_watermark=manifest.checkpoint.to,
            sequence=manifest.sequence,
        )
        return _record_result(session, job, manifest, key)


def _record_result(session: Session, job: CategoryJob, manifest: Manifest, key: str) -> RunCategory:
    row = session.get(RunCategory, (job.run_id, job.category.value))
    if row is None:
        row = RunCategory(run_id=job.run_id, category=job.category.value)
        session.add(row)
    row.status = "done"
    row.from_watermark = manifest.checkpoint.from_
    row.to_watermark = manifest.checkpoint.to
    row.sequence = manifest.sequence
    row.is_reset = manifest.reset
    row.records = manifest.records
    row.bytes = manifest.bytes
    row.parts = len(manifest.parts)
    row.manifest_key = key
    # An increment in SQL: categories of one run commit concurrently.
    session.execute(
        update(Run)
        .where(Run.id == job.run_id)
        .values(records=Run.records + manifest.records, bytes=Run.bytes + manifest.bytes)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return row
