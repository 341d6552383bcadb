"""How a category's delivered ``data`` object maps to its current-state table row and back.

One ``Shape`` per category: its table and key, ``to_columns``/``to_data`` (the conversions in
``_columns``: record to driver-ready column values for ``executemany`` and binary ``COPY``
alike, and stored row back to the exact ``data`` a consumer must end up holding) and ``check``
(the record format in ``_record_format``).

``check`` validates a record written through the store's incremental API; the seeder builds
records that are correct by construction and skips it, because it writes a million of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Date, Integer, String, Table, Text

from portability.categories import Category
from portability.db.base import UTCDateTime
from portability.errors import ValidationError
from portability.platform._columns import (
    activity_columns,
    activity_data,
    message_columns,
    message_data,
    post_columns,
    post_data,
    profile_columns,
    profile_data,
)
from portability.platform._record_format import (
    ACTIVITY_KINDS,
    PRIVACY_LEVELS,
    Data,
    activity_check,
    check_record_id,
    in_published_order,
    message_check,
    post_check,
    profile_check,
)
from portability.platform.tables import (
    PlatformActivity,
    PlatformMessage,
    PlatformPost,
    PlatformProfile,
)

__all__ = [
    "ACTIVITY_KINDS",
    "PRIVACY_LEVELS",
    "SHAPES",
    "Data",
    "Shape",
    "check_record_id",
    "copy_types",
    "in_published_order",
    "shape_for",
]


@dataclass(frozen=True)
class Shape:
    """The table, key column and conversions of one category."""

    category: Category
    table: Table
    key: str
    columns: tuple[str, ...]
    to_columns: Callable[[str, Data], tuple[Any, ...]]
    to_data: Callable[[Mapping[Any, Any]], Data]
    check: Callable[[str, str, Data], None]
    #: PostgreSQL type names of ``stored_columns``, for a binary ``COPY`` (psycopg ``set_types``).
    copy_types: tuple[str, ...]

    @property
    def stored_columns(self) -> tuple[str, ...]:
        """``columns`` plus ``line``, the record's latest delivered line (for full replays)."""
        return (*self.columns, "line")

    def bind(self, user_id: str, data: Data) -> dict[str, Any]:
        """The record as SQLAlchemy insert parameters."""
        return dict(zip(self.columns, self.to_columns(user_id, data), strict=True))


def copy_types(table: Table, columns: Sequence[str]) -> tuple[str, ...]:
    """PostgreSQL type names of ``table``'s ``columns`` as psycopg's ``set_types`` wants them."""
    names = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, UTCDateTime):
            names.append("timestamptz")
        elif isinstance(kind, Date):
            names.append("date")
        elif isinstance(kind, BigInteger):
            names.append("int8")
        elif isinstance(kind, Integer):
            names.append("int4")
        elif isinstance(kind, String):  # also Text
            names.append("text" if isinstance(kind, Text) else "varchar")
        else:  # pragma: no cover - a new column type needs a name here
            raise TypeError(f"no COPY type for {table.name}.{name}: {kind!r}")
    return tuple(names)


def _shape(
    category: Category,
    model: type[Any],
    key: str,
    to_columns: Callable[[str, Data], tuple[Any, ...]],
    to_data: Callable[[Mapping[Any, Any]], Data],
    check: Callable[[str, str, Data], None],
) -> Shape:
    table: Table = model.__table__
    columns = tuple(column.name for column in table.columns if column.name != "line")
    return Shape(
        category=category,
        table=table,
        key=key,
        columns=columns,
        to_columns=to_columns,
        to_data=to_data,
        check=check,
        copy_types=copy_types(table, (*columns, "line")),
    )


SHAPES: dict[Category, Shape] = {
    Category.PROFILE: _shape(
        Category.PROFILE,
        PlatformProfile,
        "user_id",
        profile_columns,
        profile_data,
        profile_check,
    ),
    Category.POSTS: _shape(
        Category.POSTS,
        PlatformPost,
        "id",
        post_columns,
        post_data,
        post_check,
    ),
    Category.ACTIVITY: _shape(
        Category.ACTIVITY,
        PlatformActivity,
        "id",
        activity_columns,
        activity_data,
        activity_check,
    ),
    Category.DIRECT_MESSAGES: _shape(
        Category.DIRECT_MESSAGES,
        PlatformMessage,
        "id",
        message_columns,
        message_data,
        message_check,
    ),
}


def shape_for(category: Category | str) -> Shape:
    try:
        return SHAPES[Category(category)]
    except ValueError:
        raise ValidationError(
            f"unknown category {category!r}: choose from {', '.join(c.value for c in Category)}"
        ) from None
