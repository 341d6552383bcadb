"""Delivering one stream in one run: lease, plan, write the parts, close with the manifest.

Each step is safe to repeat: the lease and the plan are idempotent for the run, an
increment's parts land under the same keys with the same bytes, the manifest is written only
if absent, and the stream moves only from where the manifest starts.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

from portability.categories import Category
from portability.db.base import utcnow
from portability.destinations.base import Destination
from portability.errors import ConsentError
from portability.export import _streams
from portability.export._close import (
    adopt_written_manifests,
    delete_unlisted,
    put_manifest,
    record_delivery,
)
from portability.export._guard import ConsentGuard
from portability.export._hooks import ExportHooks
from portability.export._plan import (
    DONE,
    EMPTY,
    FINISHED,
    Planned,
    history_is_intact,
    plan_delivery,
    read_planned,
    replay_reason,
)
from portability.export._write import PartPlan, write_parts
from portability.manifest import Manifest, PartEntry, PositionRange, manifest_key
from portability.runtime import Runtime
from portability.signing import ManifestSigner
from portability.sources.position import Position

__all__ = ["StreamJob", "deliver_stream"]


@dataclass(frozen=True)
class StreamJob:
    """One stream of one run, with what the run read once for all its streams."""

    run_id: int
    app_id: int
    authorization_id: int
    destination_id: int
    user_id: str
    #: The user's pseudonym for the app: the folder name and the manifest's ``user``.
    user: str
    category: Category
    categories: list[str]
    folder: str
    compression: str
    started_at: datetime
    #: The feed's position when the run started: an increment's upper bound.
    upper: Position
    #: Retention's horizon (feed rows of transactions below it may be gone), if any.
    horizon: int | None
    #: Rewrites a block of lines for the app (user pseudonyms).
    rewrite: Callable[[bytes], bytes]
    #: Signs the manifest (the newest of ``PORTABILITY_MANIFEST_SIGNING_KEYS``).
    signer: ManifestSigner
    #: This run's row for the stream as an earlier attempt left it (None on a first try).
    previous: Planned | None = None


def deliver_stream(
    runtime: Runtime,
    job: StreamJob,
    destination: Destination,
    guard: ConsentGuard,
    hooks: ExportHooks,
) -> tuple[str, int | None]:
    """Deliver one stream: ``(done | empty, stream id)``."""
    if job.previous is not None and job.previous.status in FINISHED:
        return job.previous.status, None  # an earlier attempt of this run finished it
    category = job.category.value
    settings = runtime.settings
    with runtime.engine.begin() as conn:
        guard.check_within(conn)
        stream = _streams.acquire_lease(
            conn,
            job.authorization_id,
            job.destination_id,
            category,
            job.run_id,
            settings.lease_seconds,
        )
    previous = job.previous
    if stream.is_pending:
        adopt_written_manifests(runtime.engine, destination, stream, job.folder, job.run_id)
        with runtime.engine.begin() as conn:
            stream = _streams.read_stream(conn, stream.id)
            previous = read_planned(conn, job.run_id, category).get(category)
        if previous is not None and previous.status in FINISHED:
            return previous.status, stream.id  # the adopted manifest was this run's own

    needs_look = stream.position is not None and stream.replay_reason is None
    intact = history_is_intact(destination, stream) if needs_look else True
    reason = replay_reason(stream, job.horizon, history_intact=intact)
    with runtime.engine.begin() as conn:
        delivery = plan_delivery(conn, job.run_id, category, stream, job.upper, reason, previous)

    written: list[str] = []  # parts completed by this attempt, deleted if consent stops it
    try:
        if delivery.is_replay:
            with runtime.source.read_state(
                job.user_id, job.category, settings.export_batch_size
            ) as state:
                end = state.position
                parts = write_parts(
                    _part_plan(job, None, end, settings.export_part_max_records),
                    state.batches,
                    destination,
                    guard,
                    hooks,
                    written,
                )
        else:
            assert delivery.start is not None and delivery.end is not None
            end = delivery.end
            plan = _part_plan(job, delivery.start, end, settings.export_part_max_records)
            # Closed at once even when writing stops early: an abandoned read would keep its
            # connection (and its COPY) open until the garbage collector found it.
            with closing(
                runtime.source.read_changes(
                    job.user_id, job.category, delivery.start, end, settings.export_batch_size
                )
            ) as batches:
                parts = write_parts(plan, batches, destination, guard, hooks, written)
            if not parts:
                return EMPTY, stream.id  # the position stays; the plan is withdrawn
        manifest = _manifest(job, delivery.sequence, delivery.start, end, reason, parts)
        key = manifest_key(job.folder, delivery.sequence)
        with guard.hold() as conn:
            stored, digest = put_manifest(destination, key, manifest, job.signer)
            hooks.after_manifest(key)
            hooks.before_checkpoint_commit(category)
            record_delivery(
                conn, stream.id, job.run_id, key, stored, digest, result_for_run=job.run_id
            )
    except ConsentError:
        delete_unlisted(destination, written)
        raise
    return DONE, stream.id


def _part_plan(job: StreamJob, start: Position | None, end: Position, max_records: int) -> PartPlan:
    return PartPlan(
        stream=job.folder,
        category=job.category.value,
        start=start,
        end=end,
        compression=job.compression,
        max_records=max_records,
        rewrite=job.rewrite,
    )


def _manifest(
    job: StreamJob,
    sequence: int,
    start: Position | None,
    end: Position,
    reason: str | None,
    parts: list[PartEntry],
) -> Manifest:
    return Manifest(
        run_id=job.run_id,
        app_id=job.app_id,
        authorization_id=job.authorization_id,
        user=job.user,
        category=job.category.value,
        categories=job.categories,
        sequence=sequence,
        position=PositionRange(
            **{"from": str(start) if start is not None else None, "to": str(end)}
        ),
        reset=reason is not None,
        replay_reason=reason,
        compression=job.compression,
        parts=parts,
        records=sum(p.records for p in parts),
        bytes=sum(p.bytes for p in parts),
        started_at=job.started_at,
        created_at=utcnow(),
    )
