"""Checkpoint rows: the per-(grant, category) lease and the guarded advance.

The lease is a column pair, not a database lock: a database row lock would hold a transaction
id open for the whole export and freeze every reader's watermark. A lapsed lease (its worker
died) can be taken by the next run. Core statements on a ``Connection``: these run on every
category of every run, where ORM bookkeeping would cost more than the round trip.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from portability.db.base import utcnow
from portability.db.engine import relax_durability
from portability.db.models import Checkpoint
from portability.errors import CategoryBusyError, ConflictError

__all__ = [
    "LeasedCheckpoint",
    "acquire_lease",
    "advance",
    "mark_planned",
    "read_checkpoint",
    "release_leases",
    "renew_lease",
]


@dataclass(frozen=True)
class LeasedCheckpoint:
    """The checkpoint as it stood when this run took its lease."""

    watermark: int
    sequence: int
    planned_sequence: int
    is_reset_pending: bool

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> LeasedCheckpoint:
        return cls(row.watermark, row.sequence, row.planned_sequence, bool(row.is_reset_pending))


# Built once: constructing a statement costs more Python time than executing it, and these run
# for every category of every run.
_STATE = (
    Checkpoint.watermark,
    Checkpoint.sequence,
    Checkpoint.planned_sequence,
    Checkpoint.is_reset_pending,
)
_THIS_CHECKPOINT = (
    Checkpoint.authorization_id == bindparam("p_authorization"),
    Checkpoint.category == bindparam("p_category"),
)
_READ = select(*_STATE).where(*_THIS_CHECKPOINT)
_TAKE = (
    update(Checkpoint)
    .where(
        *_THIS_CHECKPOINT,
        (Checkpoint.lease_run_id.is_(None))
        | (Checkpoint.lease_run_id == bindparam("p_run"))
        | (Checkpoint.lease_expires_at < bindparam("p_now")),
    )
    .values(lease_run_id=bindparam("p_run"), lease_expires_at=bindparam("p_until"))
    .returning(*_STATE)
)
_MARK_PLANNED = (
    update(Checkpoint)
    .where(*_THIS_CHECKPOINT, Checkpoint.planned_sequence < bindparam("p_sequence"))
    .values(planned_sequence=bindparam("p_sequence"))
)
_ADVANCE = (
    update(Checkpoint)
    .where(
        *_THIS_CHECKPOINT,
        Checkpoint.sequence == bindparam("p_previous"),
        Checkpoint.watermark == bindparam("p_from"),
    )
    .values(
        watermark=bindparam("p_to"),
        sequence=bindparam("p_sequence"),
        is_reset_pending=False,
        updated_at=bindparam("p_now"),
    )
)
_ADVANCE_LEASED = _ADVANCE.where(Checkpoint.lease_run_id == bindparam("p_run"))


def acquire_lease(
    conn: Connection, authorization_id: int, category: str, run_id: int, lease_seconds: int
) -> LeasedCheckpoint:
    """Take the (grant, category) lease for ``run_id`` or raise ``CategoryBusyError``.

    One ``UPDATE ... RETURNING`` in the common case; the row is created on first use.
    """
    now = utcnow()
    params = {
        "p_authorization": authorization_id,
        "p_category": category,
        "p_run": run_id,
        "p_now": now,
        "p_until": now + timedelta(seconds=lease_seconds),
    }
    row = conn.execute(_TAKE, params).one_or_none()
    if row is None:
        _ensure_row(conn, authorization_id, category)
        row = conn.execute(_TAKE, params).one_or_none()
    if row is None:
        holder = conn.scalar(
            select(Checkpoint.lease_run_id).where(
                Checkpoint.authorization_id == authorization_id, Checkpoint.category == category
            )
        )
        raise CategoryBusyError(
            f"{category} of authorization {authorization_id} is being exported by run "
            f"{holder}; this run waits its turn"
        )
    return LeasedCheckpoint.of(row)


def read_checkpoint(conn: Connection, authorization_id: int, category: str) -> LeasedCheckpoint:
    """The checkpoint as it stands, under a lease this run already holds."""
    return LeasedCheckpoint.of(
        conn.execute(_READ, {"p_authorization": authorization_id, "p_category": category}).one()
    )


def mark_planned(conn: Connection, authorization_id: int, category: str, sequence: int) -> None:
    """Record that delivery ``sequence`` is planned: a later run must look for its manifest."""
    conn.execute(
        _MARK_PLANNED,
        {"p_authorization": authorization_id, "p_category": category, "p_sequence": sequence},
    )


def _ensure_row(conn: Connection, authorization_id: int, category: str) -> None:
    exists = conn.scalar(
        select(Checkpoint.watermark).where(
            Checkpoint.authorization_id == authorization_id, Checkpoint.category == category
        )
    )
    if exists is not None:
        return
    try:
        with conn.begin_nested():
            conn.execute(
                insert(Checkpoint).values(
                    authorization_id=authorization_id,
                    category=category,
                    watermark=0,
                    sequence=0,
                    is_reset_pending=False,
                    updated_at=utcnow(),
                )
            )
    except SAIntegrityError:
        pass  # another run created it first; the lease update decides who goes on


def renew_lease(
    conn: Connection, authorization_id: int, category: str, run_id: int, lease_seconds: int
) -> None:
    relax_durability(conn)
    moved = conn.execute(
        update(Checkpoint)
        .where(
            Checkpoint.authorization_id == authorization_id,
            Checkpoint.category == category,
            Checkpoint.lease_run_id == run_id,
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
    )
    if not moved.rowcount:
        raise ConflictError(f"run {run_id} lost the lease on {category}")


def advance(
    conn: Connection,
    authorization_id: int,
    category: str,
    run_id: int | None,
    *,
    from_watermark: int,
    to_watermark: int,
    sequence: int,
) -> None:
    """Move the checkpoint past a written manifest -- only from where that manifest starts.

    Guarded on the previous watermark and sequence, so a stale worker cannot move it twice.
    """
    params: dict[str, object] = {
        "p_authorization": authorization_id,
        "p_category": category,
        "p_previous": sequence - 1,
        "p_from": from_watermark,
        "p_to": to_watermark,
        "p_sequence": sequence,
        "p_now": utcnow(),
    }
    if run_id is None:
        moved = conn.execute(_ADVANCE, params)
    else:
        moved = conn.execute(_ADVANCE_LEASED, {**params, "p_run": run_id})
    if not moved.rowcount:
        raise ConflictError(
            f"checkpoint of {category} (authorization {authorization_id}) moved while run "
            f"{run_id} was writing manifest {sequence}"
        )


def release_leases(conn: Connection, run_id: int, *, empty: Collection[str] = ()) -> None:
    """Free every lease of ``run_id``. The ``empty`` categories found nothing to deliver: no
    manifest was attempted, so their planned delivery is withdrawn too (a later run need not
    look for it)."""
    conn.execute(_RELEASE, {"p_run": run_id, "p_empty": list(empty)})


_RELEASE = (
    update(Checkpoint)
    .where(Checkpoint.lease_run_id == bindparam("p_run"))
    .values(
        lease_run_id=None,
        lease_expires_at=None,
        planned_sequence=case(
            (
                Checkpoint.category.in_(bindparam("p_empty", expanding=True)),
                Checkpoint.sequence,
            ),
            else_=Checkpoint.planned_sequence,
        ),
    )
)
