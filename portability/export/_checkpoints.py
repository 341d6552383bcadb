"""Checkpoint rows: the per-(grant, category) lease and the guarded advance.

The lease is a column pair, not a database lock: a database row lock would hold a transaction
id open for the whole export and freeze every reader's watermark. A lapsed lease (its worker
died) can be taken by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from portability.db.base import utcnow
from portability.db.engine import relax_durability
from portability.db.models import Checkpoint
from portability.errors import CategoryBusyError, ConflictError

__all__ = [
    "LeasedCheckpoint",
    "acquire_lease",
    "advance",
    "mark_planned",
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


def acquire_lease(
    session: Session, authorization_id: int, category: str, run_id: int, lease_seconds: int
) -> LeasedCheckpoint:
    """Take the (grant, category) lease for ``run_id`` or raise ``CategoryBusyError``.

    One ``UPDATE ... RETURNING`` in the common case; the row is created on first use.
    """
    relax_durability(session)
    now = utcnow()
    take = (
        update(Checkpoint)
        .where(
            Checkpoint.authorization_id == authorization_id,
            Checkpoint.category == category,
            (Checkpoint.lease_run_id.is_(None))
            | (Checkpoint.lease_run_id == run_id)
            | (Checkpoint.lease_expires_at < now),
        )
        .values(lease_run_id=run_id, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(
            Checkpoint.watermark,
            Checkpoint.sequence,
            Checkpoint.planned_sequence,
            Checkpoint.is_reset_pending,
        )
        .execution_options(synchronize_session=False)
    )
    row = session.execute(take).one_or_none()
    if row is None:
        _ensure_row(session, authorization_id, category)
        row = session.execute(take).one_or_none()
    if row is None:
        holder = session.scalar(
            select(Checkpoint.lease_run_id).where(
                Checkpoint.authorization_id == authorization_id, Checkpoint.category == category
            )
        )
        raise CategoryBusyError(
            f"{category} of authorization {authorization_id} is being exported by run "
            f"{holder}; this run waits its turn"
        )
    return LeasedCheckpoint(
        watermark=row.watermark,
        sequence=row.sequence,
        planned_sequence=row.planned_sequence,
        is_reset_pending=bool(row.is_reset_pending),
    )


def mark_planned(session: Session, authorization_id: int, category: str, sequence: int) -> None:
    """Record that delivery ``sequence`` is planned: a later run must look for its manifest."""
    session.execute(
        update(Checkpoint)
        .where(
            Checkpoint.authorization_id == authorization_id,
            Checkpoint.category == category,
            Checkpoint.planned_sequence < sequence,
        )
        .values(planned_sequence=sequence)
        .execution_options(synchronize_session=False)
    )


def _ensure_row(session: Session, authorization_id: int, category: str) -> None:
    exists = session.scalar(
        select(Checkpoint.watermark).where(
            Checkpoint.authorization_id == authorization_id, Checkpoint.category == category
        )
    )
    if exists is not None:
        return
    try:
        with session.begin_nested():
            session.execute(
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
    session: Session, authorization_id: int, category: str, run_id: int, lease_seconds: int
) -> None:
    relax_durability(session)
    moved = session.execute(
        update(Checkpoint)
        .where(
            Checkpoint.authorization_id == authorization_id,
            Checkpoint.category == category,
            Checkpoint.lease_run_id == run_id,
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(f"run {run_id} lost the lease on {category}")


def advance(
    session: Session,
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
    conditions = [
        Checkpoint.authorization_id == authorization_id,
        Checkpoint.category == category,
        Checkpoint.sequence == sequence - 1,
        Checkpoint.watermark == from_watermark,
    ]
    if run_id is not None:
        conditions.append(Checkpoint.lease_run_id == run_id)
    moved = session.execute(
        update(Checkpoint)
        .where(*conditions)
        .values(
            watermark=to_watermark,
            sequence=sequence,
            is_reset_pending=False,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(
            f"checkpoint of {category} (authorization {authorization_id}) moved while run "
            f"{run_id} was writing manifest {sequence}"
        )


def release_leases(session: Session, run_id: int) -> None:
    relax_durability(session)
    session.execute(
        update(Checkpoint)
        .where(Checkpoint.lease_run_id == run_id)
        .values(lease_run_id=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
