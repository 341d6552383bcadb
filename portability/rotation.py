"""Re-sealing every stored secret under the newest encryption key.

Rotation, for an operator: put a new key in front of ``PORTABILITY_ENCRYPTION_KEYS`` on every
host (old keys still open what they sealed), run ``portability keys rotate``, then drop the old
keys. ``rotate_secrets`` walks each sealed column in batches of rows by id, one transaction per
batch, and rewrites only tokens not already under the newest key, guarded by their old value:

- it is **restartable**: stopped anywhere, a second run skips what the first re-sealed;
- it is **safe beside live traffic**: a row changed meanwhile (a destination updated with new
  credentials, already under the newest key) is left as it is, never overwritten.

A new kind of stored secret (webhook signing secrets, ...) is rotated by adding its column to
``SEALED_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Column, Engine, Table, select, update

from portability.crypto import CredentialBox
from portability.db.event_models import WebhookEndpoint
from portability.db.models import Destination
from portability.errors import ValidationError

__all__ = ["SEALED_COLUMNS", "RotationReport", "rotate_secrets"]

#: (table, id column, token column) of every secret sealed with the ``CredentialBox``.
SEALED_COLUMNS: tuple[tuple[Table, str, str], ...] = (
    (cast(Table, Destination.__table__), "id", "credentials_encrypted"),
    # A rotation's previous webhook secret is left alone: it lives for its overlap only, and
    # a sender that can no longer open it signs with the current secret alone.
    (cast(Table, WebhookEndpoint.__table__), "id", "secret_encrypted"),
)


@dataclass
class RotationReport:
    """What a rotation did, per table and in total; ``unreadable`` lists rows no key opens."""

    examined: int = 0
    rotated: int = 0
    skipped: int = 0
    changed_meanwhile: int = 0
    unreadable: list[str] = field(default_factory=list)
    batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "rotated": self.rotated,
            "skipped": self.skipped,
            "changed_meanwhile": self.changed_meanwhile,
            "unreadable": list(self.unreadable),
            "batches": self.batches,
        }


def rotate_secrets(
    engine: Engine,
    box: CredentialBox,
    *,
    batch_size: int = 500,
    progress: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    """Re-seal every stored secret under ``box``'s newest key; ``progress`` is called after
    each committed batch (the CLI prints from it)."""
    if batch_size < 1:
        raise ValidationError("batch size must be at least 1")
    report = RotationReport()
    for table, id_name, token_name in SEALED_COLUMNS:
        id_column, token_column = table.c[id_name], table.c[token_name]
        after: Any = None
        while True:
            query = select(id_column, token_column).order_by(id_column).limit(batch_size)
            if after is not None:
                query = query.where(id_column > after)
            with engine.begin() as conn:
                rows = conn.execute(query).all()
                if not rows:
                    break
                for row_id, token in rows:
                    _rotate_one(conn, table, id_column, token_column, row_id, token, box, report)
                after = rows[-1][0]
            report.batches += 1
            if progress is not None:
                progress(report)
    return report


def _rotate_one(
    conn: Any,
    table: Table,
    id_column: Column[Any],
    token_column: Column[Any],
    row_id: Any,
    token: str,
    box: CredentialBox,
    report: RotationReport,
) -> None:
    report.examined += 1
    if box.is_current(token):
        report.skipped += 1
        return
    try:
        fresh = box.reseal(token)
    except ValidationError:
        report.unreadable.append(f"{table.name} {row_id}")
        return
    moved = conn.execute(
        update(table)
        .where(id_column == row_id, token_column == token)
        .values({token_column: fresh})
    )
    if moved.rowcount:
        report.rotated += 1
    else:
        report.changed_meanwhile += 1
