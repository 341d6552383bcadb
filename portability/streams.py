"""Streams seen from outside the engine: list them, and ask for full replays.

A stream is one (grant, destination, category) with its own position and manifest sequence.
A replay request marks streams so that their next delivery is a full replay of the current
state (``reset: true``, reason ``requested``): the way out of a gap a consumer cannot heal.
Staff (``portability streams replay``) and developers (the API) call the same function.

``app_id`` is required: a developer's call passes their app, so another app's grant is "not
found"; staff pass ``None`` explicitly to reach any app.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portability.backlog import MAX_COUNTED_CHANGES, unseen_changes
from portability.categories import Category
from portability.db.base import check_id
from portability.db.models import Authorization, ReplayReason, Run, RunCategory, Stream
from portability.errors import NotFoundError, ValidationError

__all__ = ["StreamView", "describe_stream", "list_streams", "request_replay"]

#: Deliveries ``describe_stream`` shows, newest first.
RECENT_DELIVERIES = 10


@dataclass(frozen=True, slots=True)
class StreamView:
    """A stream as support and developers see it."""

    id: int
    authorization_id: int
    destination_id: int
    category: str
    position: str | None
    sequence: int
    replay_pending: str | None
    last_manifest_key: str | None
    last_delivered_at: datetime | None
    leased_by_run: int | None


def list_streams(
    session: Session,
    *,
    app_id: int | None,
    authorization_id: int | None = None,
    destination_id: int | None = None,
) -> list[StreamView]:
    """The streams of a grant and/or a destination, in a stable order."""
    if authorization_id is None and destination_id is None:
        raise ValidationError("name a grant or a destination to list its streams")
    query = select(Stream).join(Authorization, Authorization.id == Stream.authorization_id)
    if authorization_id is not None:
        _grant(session, authorization_id, app_id)
        query = query.where(Stream.authorization_id == authorization_id)
    if destination_id is not None:
        query = query.where(Stream.destination_id == destination_id)
    if app_id is not None:
        query = query.where(Authorization.app_id == app_id)
    rows = session.scalars(
        query.order_by(Stream.authorization_id, Stream.destination_id, Stream.category)
    )
    return [_view(row) for row in rows]


def _view(row: Stream) -> StreamView:
    return StreamView(
        id=row.id,
        authorization_id=row.authorization_id,
        destination_id=row.destination_id,
        category=row.category,
        position=row.position,
        sequence=row.sequence,
        replay_pending=row.replay_reason,
        last_manifest_key=row.last_manifest_key,
        last_delivered_at=row.last_delivered_at,
        leased_by_run=row.lease_run_id,
    )


def describe_stream(session: Session, stream_id: int, *, app_id: int | None) -> dict[str, Any]:
    """One stream for support: where it stands, how far behind the feed it is, its lease and
    its latest deliveries (run, status, records, positions, manifest), newest first."""
    row = session.get(Stream, check_id(stream_id, "stream id"))
    grant = session.get(Authorization, row.authorization_id) if row is not None else None
    if row is None or grant is None or (app_id is not None and grant.app_id != app_id):
        raise NotFoundError(f"stream {stream_id} not found")
    unseen = unseen_changes(session.connection(), grant.user_id, row.category, row.position)
    deliveries = session.execute(
        select(Run.id, Run.status, Run.finished_at, RunCategory)
        .join(RunCategory, RunCategory.run_id == Run.id)
        .where(
            Run.authorization_id == row.authorization_id,
            Run.destination_id == row.destination_id,
            RunCategory.category == row.category,
        )
        .order_by(Run.id.desc())
        .limit(RECENT_DELIVERIES)
    ).all()
    return {
        **asdict(_view(row)),
        "user_id": grant.user_id,
        "last_manifest_sha256": row.last_manifest_sha256,
        "lease_expires_at": row.lease_expires_at,
        "unseen_changes": (f"{unseen}+" if unseen >= MAX_COUNTED_CHANGES else unseen),
        "deliveries": [
            {
                "run": run_id,
                "run_status": status,
                "status": planned.status,
                "records": planned.records,
                "replay": planned.replay_reason,
                "from": planned.from_position,
                "to": planned.to_position,
                "manifest_key": planned.manifest_key,
                "finished_at": finished_at,
            }
            for run_id, status, finished_at, planned in deliveries
        ],
    }


def request_replay(
    session: Session,
    *,
    app_id: int | None,
    authorization_id: int | None = None,
    destination_id: int | None = None,
    category: Category | str | None = None,
) -> list[int]:
    """Mark the matching streams for a full replay at their next delivery; returns their ids.

    A stream that has not delivered yet needs nothing: its first delivery is a replay.
    """
    if authorization_id is None and destination_id is None:
        raise ValidationError("name a grant or a destination whose streams should replay")
    streams = list_streams(
        session, app_id=app_id, authorization_id=authorization_id, destination_id=destination_id
    )
    if category is not None:
        try:
            wanted = Category(category).value
        except ValueError:
            choices = ", ".join(c.value for c in Category)
            raise ValidationError(f"unknown category {category!r}: choose from {choices}") from None
        streams = [s for s in streams if s.category == wanted]
    ids = [s.id for s in streams if s.position is not None]
    if ids:
        session.execute(
            update(Stream)
            .where(Stream.id.in_(ids))
            .values(replay_reason=ReplayReason.REQUESTED.value)
            .execution_options(synchronize_session=False)
        )
    return ids


def _grant(session: Session, authorization_id: int, app_id: int | None) -> Authorization:
    grant = session.get(Authorization, authorization_id)
    if grant is None or (app_id is not None and grant.app_id != app_id):
        raise NotFoundError(f"authorization {authorization_id} not found")
    return grant
