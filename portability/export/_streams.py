"""Stream rows: the per-(grant, destination, category) lease, plan mark and guarded advance.

The lease is a column pair, not a database lock held for the export: a lapsed lease (its
worker died) can be taken by the next run. Core statements on a ``Connection``: these run for
every stream of every run, where ORM bookkeeping would cost more than the round trip.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from portability.db.base import utcnow
from portability.db.models import FeedMark, Stream
from portability.errors import CategoryBusyError, ConflictError
from portability.sources.position import Position

__all__ = [
    "StreamState",
    "acquire_lease",
    "advance",
    "horizon",
    "mark_planned",
    "read_stream",
    "release_leases",
    "renew_leases",
]


@dataclass(frozen=True)
class StreamState:
    """A stream as it stood when this run took (or re-read) its lease."""

    id: int
    position: Position | None
    sequence: int
    planned_sequence: int
    replay_reason: str | None
    last_manifest_key: str | None
    last_manifest_sha256: str | None

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> StreamState:
        return cls(
            row.id,
            Position.parse(row.position) if row.position else None,
            row.sequence,
            row.planned_sequence,
            row.replay_reason,
            row.last_manifest_key,
            row.last_manifest_sha256,
        )

    @property
    def is_pending(self) -> bool:
        """A delivery was planned beyond the position: its manifest may exist."""
        return self.planned_sequence > self.sequence


_STATE = (
    Stream.id,
    Stream.position,
    Stream.sequence,
    Stream.planned_sequence,
    Stream.replay_reason,
    Stream.last_manifest_key,
    Stream.last_manifest_sha256,
)
_THIS_STREAM = (
    Stream.authorization_id == bindparam("p_authorization"),
    Stream.destination_id == bindparam("p_destination"),
    Stream.category == bindparam("p_category"),
)
_READ = select(*_STATE).where(Stream.id == bindparam("p_stream"))
_TAKE = (
    update(Stream)
    .where(
        *_THIS_STREAM,
        (Stream.lease_run_id.is_(None))
        | (Stream.lease_run_id == bindparam("p_run"))
        | (Stream.lease_expires_at < bindparam("p_now")),
    )
    .values(lease_run_id=bindparam("p_run"), lease_expires_at=bindparam("p_until"))
    .returning(*_STATE)
)
_MARK_PLANNED = (
    update(Stream)
    .where(Stream.id == bindparam("p_stream"), Stream.planned_sequence < bindparam("p_sequence"))
    .values(planned_sequence=bindparam("p_sequence"))
)
_ADVANCE_VALUES: dict[str, Any] = {
    "position": bindparam("p_to"),
    "sequence": bindparam("p_sequence"),
    "last_manifest_key": bindparam("p_key"),
    "last_manifest_sha256": bindparam("p_sha"),
    "last_delivered_at": bindparam("p_now"),
    "updated_at": bindparam("p_now"),
}
_ADVANCE_FROM = (Stream.id == bindparam("p_stream"), Stream.sequence == bindparam("p_previous"))
#: An increment moves on only from where its manifest starts; a replay from any position.
_ADVANCE = update(Stream).where(*_ADVANCE_FROM, Stream.position == bindparam("p_from"))
_ADVANCE_REPLAY = update(Stream).where(*_ADVANCE_FROM)
_RENEW = (
    update(Stream)
    .where(Stream.lease_run_id == bindparam("p_run"))
    .values(lease_expires_at=bindparam("p_until"))
)
_RELEASE = (
    update(Stream)
    .where(Stream.lease_run_id == bindparam("p_run"))
    .values(
        lease_run_id=None,
        lease_expires_at=None,
        # A stream that found nothing to deliver attempted no manifest: its plan is withdrawn
        # (a later run need not look for it).
        planned_sequence=case(
            (Stream.id.in_(bindparam("p_empty", expanding=True)), Stream.sequence),
            else_=Stream.planned_sequence,
        ),
    )
)
_HORIZON = select(func.max(FeedMark.snapshot_xmin)).where(FeedMark.is_horizon.is_(True))


def acquire_lease(
    conn: Connection,
    authorization_id: int,
    destination_id: int,
    category: str,
    run_id: int,
    lease_seconds: int,
) -> StreamState:
    """Take the stream's lease for ``run_id`` or raise ``CategoryBusyError``.

    One ``UPDATE ... RETURNING`` in the common case; the row is created on first use.
    """
    now = utcnow()
    params = {
        "p_authorization": authorization_id,
        "p_destination": destination_id,
        "p_category": category,
        "p_run": run_id,
        "p_now": now,
        "p_until": now + timedelta(seconds=lease_seconds),
    }
    row = conn.execute(_TAKE, params).one_or_none()
    if row is None:
        _ensure_row(conn, authorization_id, destination_id, category)
        row = conn.execute(_TAKE, params).one_or_none()
    if row is None:
        holder = conn.scalar(select(Stream.lease_run_id).where(*_THIS_STREAM), params)
        raise CategoryBusyError(
            f"the {category} stream of authorization {authorization_id} to destination "
            f"{destination_id} is being exported by run {holder}; this run waits its turn"
        )
    return StreamState.of(row)


def _ensure_row(
    conn: Connection, authorization_id: int, destination_id: int, category: str
) -> None:
    try:
        with conn.begin_nested():
            conn.execute(
                insert(Stream).values(
                    authorization_id=authorization_id,
                    destination_id=destination_id,
                    category=category,
                    position=None,
                    sequence=0,
                    planned_sequence=0,
                    updated_at=utcnow(),
                )
            )
    except SAIntegrityError:
        pass  # it exists (or another run created it first); the lease update decides


def read_stream(conn: Connection, stream_id: int) -> StreamState:
    """The stream as it stands, under a lease this run already holds."""
    return StreamState.of(conn.execute(_READ, {"p_stream": stream_id}).one())


def mark_planned(conn: Connection, stream_id: int, sequence: int) -> None:
    """Record that delivery ``sequence`` is planned: a later run must look for its manifest."""
    conn.execute(_MARK_PLANNED, {"p_stream": stream_id, "p_sequence": sequence})


def advance(
    conn: Connection,
    stream_id: int,
    *,
    run_id: int | None,
    start: str | None,
    end: str,
    sequence: int,
    manifest_key: str,
    manifest_sha256: str,
    replay_reason: str | None,
    now: datetime | None = None,
) -> None:
    """Move the stream past a written manifest, guarded on its previous sequence (and, for an
    increment, on the position the manifest starts from): a stale worker cannot move it twice.
    A replay also settles a pending replay request."""
    params: dict[str, object] = {
        "p_stream": stream_id,
        "p_previous": sequence - 1,
        "p_from": start,
        "p_to": end,
        "p_sequence": sequence,
        "p_key": manifest_key,
        "p_sha": manifest_sha256,
        "p_now": now or utcnow(),
    }
    values = dict(_ADVANCE_VALUES)
    statement = _ADVANCE
    if replay_reason is not None:
        statement, values["replay_reason"] = _ADVANCE_REPLAY, None
    if run_id is not None:
        statement = statement.where(Stream.lease_run_id == bindparam("p_run"))
        params["p_run"] = run_id
    moved = conn.execute(statement.values(**values), params)
    if not moved.rowcount:
        raise ConflictError(
            f"stream {stream_id} moved while run {run_id} was writing manifest {sequence}"
        )


def renew_leases(conn: Connection, run_id: int, lease_seconds: int) -> None:
    """Extend every stream lease ``run_id`` holds (the heartbeat)."""
    conn.execute(_RENEW, {"p_run": run_id, "p_until": utcnow() + timedelta(seconds=lease_seconds)})


def release_leases(conn: Connection, run_id: int, *, empty: Collection[int] = ()) -> None:
    """Free every lease of ``run_id``; the ``empty`` streams' planned deliveries are withdrawn."""
    conn.execute(_RELEASE, {"p_run": run_id, "p_empty": list(empty)})


def horizon(conn: Connection) -> int | None:
    """Feed rows of transactions below this id may have been deleted by retention."""
    value = conn.scalar(_HORIZON)
    return int(value) if value is not None else None
