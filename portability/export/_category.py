"""Exporting one category of one run: open, stream parts, write the manifest, advance.

Every step is safe to repeat. The watermark range is fixed in ``run_categories`` at the first
attempt, so a retry rewrites byte-identical parts under the same keys; the manifest is written
last and conditionally; the checkpoint moves only after the manifest exists, in the same
transaction as the category's result. If a previous attempt wrote the manifest and died before
its commit, the manifest is adopted instead of written again.

The database work is two transactions per category in the common case, Core statements only:
one opens the category (consent, lease, plan), one closes it (checkpoint and result). An
incremental run's cost is then mostly those round trips and two PUTs, whatever the history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, Row, Update, bindparam, insert, select, update

from portability.categories import Category
from portability.db.base import utcnow
from portability.db.engine import relax_durability
from portability.db.models import RunCategory
from portability.destinations.base import Destination
from portability.errors import ConflictError, IntegrityError, ObjectExistsError
from portability.export import _checkpoints
from portability.export._hooks import ExportHooks
from portability.export._parts import PartWriter
from portability.manifest import CheckpointRange, Manifest, PartEntry, manifest_key, part_key
from portability.runs import renew_lease as renew_run_lease
from portability.runtime import Runtime
from portability.sources.base import TOMBSTONE_END

__all__ = ["CategoryJob", "ConsentCheck", "Planned", "export_category", "read_planned"]

#: Renew leases at most this often while streaming (well inside any sane lease).
_RENEW_EVERY_SECONDS = 2.0

#: Outcomes of a category; a run's retry skips the categories it already finished.
DONE, EMPTY = "done", "empty"
_FINISHED = frozenset({DONE, EMPTY})


@dataclass(frozen=True)
class Planned:
    """A category's row in ``run_categories``: its status and the range it was planned for."""

    status: str
    from_watermark: int | None
    to_watermark: int | None
    sequence: int | None
    is_reset: bool

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> Planned:
        return cls(
            row.status, row.from_watermark, row.to_watermark, row.sequence, bool(row.is_reset)
        )


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
    #: This run's row for the category as an earlier attempt left it (None on a first try).
    previous: Planned | None = None


@dataclass(frozen=True)
class _Range:
    """The delivery this attempt makes: ``[start, end)`` of the feed as manifest ``sequence``."""

    start: int
    end: int
    sequence: int
    is_reset: bool


class ConsentCheck:
    """Re-reads the grant (one autocommit query); renews the leases every couple of seconds.

    The consent check is a few primary-key reads, cheap next to a batch of thousands of
    records, and it is what bounds how much is written after a revocation: nothing.
    """

    def __init__(self, runtime: Runtime, run_id: int, check: Callable[[Connection], None]) -> None:
        self._runtime = runtime
        self._run_id = run_id
        self._check = check
        self._renewed = time.monotonic()  # the claim and the category lease are fresh
        self.category: tuple[int, str] | None = None

    def within(self, conn: Connection) -> None:
        """Check inside a transaction the caller is opening anyway."""
        self._check(conn)

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._renewed < _RENEW_EVERY_SECONDS:
            with self._runtime.autocommit.connect() as conn:
                self._check(conn)
            return
        settings = self._runtime.settings
        with self._runtime.engine.begin() as conn:
            self._check(conn)
            relax_durability(conn)
            renew_run_lease(conn, self._run_id, lease_seconds=settings.lease_seconds)
            if self.category is not None:
                _checkpoints.renew_lease(conn, *self.category, self._run_id, settings.lease_seconds)
        self._renewed = now


def export_category(
    runtime: Runtime,
    job: CategoryJob,
    destination: Destination,
    check_consent: ConsentCheck,
    hooks: ExportHooks,
) -> str:
    """Deliver one category; returns ``done``, or ``empty`` when there was nothing new."""
    if job.previous is not None and job.previous.status in _FINISHED:
        return job.previous.status  # an earlier attempt of this run finished it
    settings = runtime.settings
    with runtime.engine.begin() as conn:
        check_consent.within(conn)  # before every category
        leased = _checkpoints.acquire_lease(
            conn, job.authorization_id, job.category.value, job.run_id, settings.lease_seconds
        )
        pending = leased.planned_sequence > leased.sequence
        span = None if pending else _plan(conn, job, leased, job.previous)
    if span is None:
        # Only while a planned delivery is pending can a manifest lie beyond the checkpoint.
        _adopt_written_manifests(runtime, job, destination)
        with runtime.engine.begin() as conn:
            checkpoint = _checkpoints.read_checkpoint(
                conn, job.authorization_id, job.category.value
            )
            previous = read_planned(conn, job.run_id, job.category.value).get(job.category.value)
            if previous is not None and previous.status in _FINISHED:
                return previous.status  # the adopted manifest was this run's own
            span = _plan(conn, job, checkpoint, previous)

    parts = _write_parts(runtime, job, destination, span, check_consent, hooks)
    if not parts:
        return EMPTY  # recorded with the run's outcome; the checkpoint stays where it is
    manifest = Manifest(
        run_id=job.run_id,
        app_id=job.app_id,
        authorization_id=job.authorization_id,
        user_id=job.user_id,
        category=job.category.value,
        categories=job.categories,
        sequence=span.sequence,
        checkpoint=CheckpointRange(**{"from": span.start, "to": span.end}),
        reset=span.is_reset,
        compression=job.compression,
        parts=parts,
        records=sum(p.records for p in parts),
        bytes=sum(p.bytes for p in parts),
        started_at=job.started_at,
        created_at=utcnow(),
    )
    check_consent()  # last look before the manifest makes the delivery visible
    key = manifest_key(job.stream, span.sequence)
    _put_manifest(destination, key, manifest)
    hooks.after_manifest(key)
    hooks.before_checkpoint_commit(job.category.value)
    with runtime.engine.begin() as conn:
        _checkpoints.advance(
            conn,
            job.authorization_id,
            job.category.value,
            job.run_id,
            from_watermark=span.start,
            to_watermark=span.end,
            sequence=span.sequence,
        )
        _record_result(conn, job, manifest, key)
    return DONE


def _plan(
    conn: Connection,
    job: CategoryJob,
    checkpoint: _checkpoints.LeasedCheckpoint,
    previous: Planned | None,
) -> _Range:
    """Fix the range of this delivery, reusing a previous attempt's when still valid.

    Planned before anything is read, in the transaction that took the lease: a category that
    turns out empty withdraws its plan when the run ends (``release_leases``).
    """
    watermark, sequence = checkpoint.watermark, checkpoint.sequence + 1
    if (
        previous is not None
        and previous.from_watermark == watermark
        and previous.sequence == sequence
        and previous.to_watermark is not None
    ):
        # A retry: same range, same keys, same bytes.
        span = _Range(watermark, previous.to_watermark, sequence, previous.is_reset)
    else:
        span = _Range(
            watermark, max(job.watermark, watermark), sequence, checkpoint.is_reset_pending
        )
        params = {
            "p_run": job.run_id,
            "p_category": job.category.value,
            "p_from": span.start,
            "p_to": span.end,
            "p_sequence": span.sequence,
            "p_reset": span.is_reset,
        }
        conn.execute(_INSERT_PLAN if previous is None else _UPDATE_PLAN, params)
    # Durable with the lease: it tells a later run to look for this delivery's manifest
    # (a no-op when the mark is already there).
    _checkpoints.mark_planned(conn, job.authorization_id, job.category.value, sequence)
    return span


def read_planned(conn: Connection, run_id: int, category: str | None = None) -> dict[str, Planned]:
    """This run's ``run_categories`` rows (or the one of ``category``) as ``Planned``."""
    query = _PLANNED.where(RunCategory.run_id == run_id)
    if category is not None:
        query = query.where(RunCategory.category == category)
    return {row.category: Planned.of(row) for row in conn.execute(query)}


def _adopt_written_manifests(runtime: Runtime, job: CategoryJob, destination: Destination) -> None:
    """A manifest beyond the checkpoint means an attempt died between manifest and commit:
    the delivery is visible to consumers, so the checkpoint must catch up to it."""
    while True:
        with runtime.engine.begin() as conn:
            checkpoint = _checkpoints.read_checkpoint(
                conn, job.authorization_id, job.category.value
            )
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
        with runtime.engine.begin() as conn:
            _checkpoints.advance(
                conn,
                job.authorization_id,
                job.category.value,
                job.run_id,
                from_watermark=watermark,
                to_watermark=written.checkpoint.to,
                sequence=sequence,
            )
            if written.run_id == job.run_id:
                _record_result(conn, job, written, key)


def _write_parts(
    runtime: Runtime,
    job: CategoryJob,
    destination: Destination,
    span: _Range,
    check_consent: ConsentCheck,
    hooks: ExportHooks,
) -> list[PartEntry]:
    settings = runtime.settings
    max_records = settings.export_part_max_records
    parts: list[PartEntry] = []
    writer: PartWriter | None = None
    first_batch = True

    def open_part() -> PartWriter:
        key = part_key(job.stream, span.start, span.end, len(parts), job.compression)
        return PartWriter(destination, key, job.compression)

    try:
        for batch in runtime.source.read(
            job.user_id, job.category, span.start, span.end, settings.export_batch_size
        ):
            hooks.between_batches(job.category.value)
            if not first_batch:  # the first is covered by the check that opened the category
                check_consent()
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


def _record_result(conn: Connection, job: CategoryJob, manifest: Manifest, key: str) -> None:
    """The category's result row; the run's totals are summed from these when it ends."""
    params = {
        "p_run": job.run_id,
        "p_category": job.category.value,
        "p_from": manifest.checkpoint.from_,
        "p_to": manifest.checkpoint.to,
        "p_sequence": manifest.sequence,
        "p_reset": manifest.reset,
        "p_records": manifest.records,
        "p_bytes": manifest.bytes,
        "p_parts": len(manifest.parts),
        "p_key": key,
    }
    if not conn.execute(_UPDATE_RESULT, params).rowcount:
        conn.execute(_INSERT_RESULT, params)


# Statements built once (see ``_checkpoints``): the plan and the result of a category.
_PLANNED = select(
    RunCategory.category,
    RunCategory.status,
    RunCategory.from_watermark,
    RunCategory.to_watermark,
    RunCategory.sequence,
    RunCategory.is_reset,
)
_THIS_ROW = (
    RunCategory.run_id == bindparam("p_run"),
    RunCategory.category == bindparam("p_category"),
)
_PLAN_VALUES: dict[str, Any] = {
    "status": "planned",
    "from_watermark": bindparam("p_from"),
    "to_watermark": bindparam("p_to"),
    "sequence": bindparam("p_sequence"),
    "is_reset": bindparam("p_reset"),
}
_RESULT_VALUES: dict[str, Any] = {
    **_PLAN_VALUES,
    "status": DONE,
    "records": bindparam("p_records"),
    "bytes": bindparam("p_bytes"),
    "parts": bindparam("p_parts"),
    "manifest_key": bindparam("p_key"),
}


def _insert_and_update(values: dict[str, Any]) -> tuple[Insert, Update]:
    """The row's INSERT (first attempt) and UPDATE (a later one) with the same values."""
    key: dict[str, Any] = {"run_id": bindparam("p_run"), "category": bindparam("p_category")}
    return (
        insert(RunCategory).values(**key, **values),
        update(RunCategory).where(*_THIS_ROW).values(**values),
    )


_INSERT_PLAN, _UPDATE_PLAN = _insert_and_update(_PLAN_VALUES)
_INSERT_RESULT, _UPDATE_RESULT = _insert_and_update(_RESULT_VALUES)
