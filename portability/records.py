"""The delivered record envelope: one JSON object per line, the same for every category.

    {"id": "<record id>", "op": "upsert" | "delete", "changed_at": "<RFC 3339 UTC>",
     "data": {...category fields...} | null}

A delete is a tombstone: ``op`` is ``"delete"`` and ``data`` is ``null``. Record shapes per
category are published as JSON Schemas in ``docs/schemas/`` and versioned by ``SCHEMA_VERSION``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

__all__ = ["SCHEMA_VERSION", "Op", "change_line", "format_timestamp"]

#: Bump on any change to a record or manifest shape that a consumer could notice.
SCHEMA_VERSION = 2


class Op(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``: sortable as text, parseable everywhere."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def change_line(record_id: str, op: Op, changed_at: datetime, data: dict[str, Any] | None) -> str:
    """The exact JSON text delivered for one change (no trailing newline)."""
    if (op is Op.DELETE) != (data is None):
        raise ValueError("a delete carries no data and an upsert always does")
    return orjson.dumps(
        {"id": record_id, "op": op.value, "changed_at": format_timestamp(changed_at), "data": data}
    ).decode()
