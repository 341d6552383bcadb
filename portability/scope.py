"""Isolation (promise 8) in one place: what one app may see and touch.

Every read and write the developer API makes on an app's behalf fetches its rows through
``owned`` or ``AppScope``: another app's row, a missing one and a deleted one are the same
``NotFoundError`` with the same message, so an id reveals nothing about who holds it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from portability.errors import NotFoundError

__all__ = ["AppScope", "owned"]

_T = TypeVar("_T")

#: The names messages use for each table, in the developer's words.
_NOUNS = {
    "authorizations": "grant",
    "destinations": "destination",
    "schedules": "schedule",
    "runs": "run",
    "api_keys": "key",
}


def _noun(model: type[Any]) -> str:
    return _NOUNS.get(model.__tablename__, model.__name__.lower())


def owned(session: Session, model: type[_T], key: object, app_id: int) -> _T:
    """The row ``key`` of ``model`` if ``app_id`` holds it and it is not deleted."""
    row = session.get(model, key)
    if (
        row is None
        or getattr(row, "app_id", None) != app_id
        or getattr(row, "deleted_at", None) is not None
    ):
        raise NotFoundError(f"{_noun(model)} {key} not found")
    return row


class AppScope:
    """Reads on behalf of one app: ``get`` one row, ``select`` its rows."""

    def __init__(self, session: Session, app_id: int) -> None:
        self.session = session
        self.app_id = app_id

    def get(self, model: type[_T], key: object) -> _T:
        return owned(self.session, model, key, self.app_id)

    def select(self, model: type[_T]) -> Select[_T]:
        query = select(model).where(model.app_id == self.app_id)  # type: ignore[attr-defined]
        deleted = getattr(model, "deleted_at", None)
        if deleted is not None:
            query = query.where(deleted.is_(None))
        return query
