"""Planning a stream's delivery: an increment from its position, or a full replay, and why.

A delivery is a full replay of the current state when the stream has never delivered
(``first_delivery``), when one was asked for (``requested``), when retention deleted feed rows
the stream had not delivered yet (``behind_retention``), or when the destination no longer
holds the stream's last manifest as written (``lost_history``: the bucket was wiped, the prefix
deleted, a lifecycle rule expired it, the bucket was replaced). Otherwise it is the increment
from the stream's position to the run's upper position.

An increment's plan is fixed in ``run_categories`` at the first attempt, so a retry of the run
rewrites the same parts under the same keys; a replay is re-read at every attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Row, Update, bindparam, insert, select, update

from portability.db.models import ReplayReason, Run, RunCategory
from portability.destinations.base import Destination
from portability.export._streams import StreamState, mark_planned
from portability.sources.position import Position

__all__ = [
    "DONE",
    "EMPTY",
    "FINISHED",
    "Delivery",
    "Planned",
    "history_is_intact",
    "plan_delivery",
    "read_planned",
    "record_result",
    "replay_reason",
]

#: Outcomes of a stream in a run; a run's retry skips the streams it already finished.
DONE, EMPTY = "done", "empty"
FINISHED = frozenset({DONE, EMPTY})

#: User metadata on every manifest: the SHA-256 of its bytes, compared by the history check.
MANIFEST_SHA_METADATA = "portability-sha256"


@dataclass(frozen=True)
class Planned:
    """A stream's row in ``run_categories``: its status and what it was planned to cover."""

    status: str
    from_position: str | None
    to_position: str | None
    sequence: int | None
    replay_reason: str | None

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> Planned:
        return cls(row.status, row.from_position, row.to_position, row.sequence, row.replay_reason)


@dataclass(frozen=True)
class Delivery:
    """What this attempt delivers as manifest ``sequence``: the changes from ``start`` to
    ``end``, or (``replay_reason`` set) the whole current state, whose ``end`` is the position
    of the state read and known only once it is open."""

    sequence: int
    start: Position | None
    end: Position | None
    replay_reason: str | None

    @property
    def is_replay(self) -> bool:
        return self.replay_reason is not None


def replay_reason(stream: StreamState, horizon: int | None, *, history_intact: bool) -> str | None:
    """Why the next delivery of ``stream`` must be a full replay, or None for an increment."""
    if stream.position is None:
        return ReplayReason.FIRST_DELIVERY.value
    if stream.replay_reason is not None:
        return stream.replay_reason
    if horizon is not None and not stream.position.sees_everything_below(horizon):
        return ReplayReason.BEHIND_RETENTION.value
    if not history_intact:
        return ReplayReason.LOST_HISTORY.value
    return None


def history_is_intact(destination: Destination, stream: StreamState) -> bool:
    """Whether the destination still holds the stream's last manifest as it was written.

    One HEAD: the manifest carries its own SHA-256 in user metadata, and the stream row
    remembers it. A missing object, or one with another digest, means the history is gone.
    """
    if stream.last_manifest_key is None or stream.last_manifest_sha256 is None:
        return stream.sequence == 0
    found = destination.head_object(stream.last_manifest_key)
    if found is None:
        return False
    return found.metadata.get(MANIFEST_SHA_METADATA) == stream.last_manifest_sha256


def plan_delivery(
    conn: Connection,
    run_id: int,
    category: str,
    stream: StreamState,
    upper: Position,
    reason: str | None,
    previous: Planned | None,
) -> Delivery:
    """Fix this attempt's delivery and mark it planned on the stream, in the lease's
    transaction. An increment reuses an earlier attempt's range when it still starts at the
    stream's position (same keys, same bytes)."""
    sequence = stream.sequence + 1
    start = stream.position
    if reason is not None:
        delivery = Delivery(sequence, None, None, reason)
    elif (
        previous is not None
        and previous.replay_reason is None
        and previous.sequence == sequence
        and previous.from_position == str(start)
        and previous.to_position is not None
    ):
        delivery = Delivery(sequence, start, Position.parse(previous.to_position), None)
    else:
        assert start is not None  # only a first delivery has no position, and it replays
        end = upper if upper.covers(start) else start
        delivery = Delivery(sequence, start, end, None)
    params = {
        "p_run": run_id,
        "p_category": category,
        "p_from": str(delivery.start) if delivery.start is not None else None,
        "p_to": str(delivery.end) if delivery.end is not None else None,
        "p_sequence": delivery.sequence,
        "p_reason": delivery.replay_reason,
    }
    conn.execute(_INSERT_PLAN if previous is None else _UPDATE_PLAN, params)
    mark_planned(conn, stream.id, sequence)
    return delivery


def read_planned(conn: Connection, run_id: int, category: str | None = None) -> dict[str, Planned]:
    """This run's ``run_categories`` rows (or the one of ``category``) as ``Planned``."""
    query = _PLANNED.where(RunCategory.run_id == run_id)
    if category is not None:
        query = query.where(RunCategory.category == category)
    return {row.category: Planned.of(row) for row in conn.execute(query)}


def record_result(
    conn: Connection,
    run_id: int,
    category: str,
    *,
    start: str | None,
    end: str,
    sequence: int,
    reason: str | None,
    records: int,
    size: int,
    parts: int,
    key: str,
) -> None:
    """The stream's result row; the run's totals are summed from these when it ends."""
    params = {
        "p_run": run_id,
        "p_category": category,
        "p_from": start,
        "p_to": end,
        "p_sequence": sequence,
        "p_reason": reason,
        "p_records": records,
        "p_bytes": size,
        "p_parts": parts,
        "p_key": key,
    }
    if not conn.execute(_UPDATE_RESULT, params).rowcount:
        conn.execute(_INSERT_RESULT, params)


# Statements built once: the plan and the result of a stream.
_PLANNED = select(
    RunCategory.category,
    RunCategory.status,
    RunCategory.from_position,
    RunCategory.to_position,
    RunCategory.sequence,
    RunCategory.replay_reason,
)
_THIS_ROW = (
    RunCategory.run_id == bindparam("p_run"),
    RunCategory.category == bindparam("p_category"),
)
_PLAN_VALUES: dict[str, Any] = {
    "status": "planned",
    "from_position": bindparam("p_from"),
    "to_position": bindparam("p_to"),
    "sequence": bindparam("p_sequence"),
    "replay_reason": bindparam("p_reason"),
}
_RESULT_VALUES: dict[str, Any] = {
    **_PLAN_VALUES,
    "status": DONE,
    "records": bindparam("p_records"),
    "bytes": bindparam("p_bytes"),
    "parts": bindparam("p_parts"),
    "manifest_key": bindparam("p_key"),
}


#: The row's partition key on PostgreSQL: its run's ``queued_at``, read in the INSERT itself.
_RUN_QUEUED_AT = select(Run.queued_at).where(Run.id == bindparam("p_run")).scalar_subquery()


def _insert_and_update(values: dict[str, Any]) -> tuple[Insert, Update]:
    """The row's INSERT (first attempt) and UPDATE (a later one) with the same values."""
    key: dict[str, Any] = {
        "run_id": bindparam("p_run"),
        "category": bindparam("p_category"),
        "run_queued_at": _RUN_QUEUED_AT,
    }
    return (
        insert(RunCategory).values(**key, **values),
        update(RunCategory).where(*_THIS_ROW).values(**values),
    )


_INSERT_PLAN, _UPDATE_PLAN = _insert_and_update(_PLAN_VALUES)
_INSERT_RESULT, _UPDATE_RESULT = _insert_and_update(_RESULT_VALUES)
