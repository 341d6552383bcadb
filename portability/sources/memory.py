"""An honest in-memory change feed for tests: the SQL feed's semantics without a database.

Like PostgreSQL, each write belongs to a transaction that takes an id when it begins and a
position per change as it writes; changes become visible only when their transaction commits,
and a position is a snapshot: the open transactions and the next id. So a test can hold a
transaction open, commit a later one, and watch the later one be delivered first and the
earlier one by the next delivery::

    source = MemorySource()
    slow = source.begin()
    slow.upsert("u1", Category.POSTS, "p1", {...})    # lower txid, lower position
    source.upsert("u1", Category.POSTS, "p2", {...})  # its own transaction, committed
    first = source.position()                         # sees p2, not p1 (slow is in flight)
    slow.commit()                                     # p1 is delivered after ``first``
"""

from __future__ import annotations

import threading
from bisect import insort
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from portability.categories import Category
from portability.db.base import utcnow
from portability.errors import ConflictError, ValidationError
from portability.records import Op, change_line
from portability.sources.base import ChangeBatch, Source, StateRead
from portability.sources.position import Position

__all__ = ["MemorySource", "MemoryTransaction"]

_Key = tuple[str, str]  # (user id, category)


@dataclass(order=True, frozen=True)
class _Change:
    txid: int
    position: int
    line: str = field(compare=False)
    is_delete: bool = field(compare=False)
    record_id: str = field(compare=False)
    data: dict[str, Any] | None = field(compare=False)


class MemoryTransaction:
    """Changes written under one transaction id, invisible until ``commit``.

    Use as a context manager (commit on success, roll back on error) or call ``commit`` /
    ``rollback`` yourself.
    """

    def __init__(self, source: MemorySource, txid: int) -> None:
        self.source = source
        self.txid = txid
        self.is_open = True
        self._pending: list[tuple[_Key, _Change]] = []

    def write(
        self,
        user_id: str,
        category: Category | str,
        record_id: str,
        op: Op,
        data: dict[str, Any] | None,
        changed_at: datetime | None = None,
    ) -> int:
        """Record one change; returns its position (taken now, as a sequence would)."""
        if not self.is_open:
            raise ConflictError(f"transaction {self.txid} is already finished")
        kind = Category(category).value
        line = change_line(record_id, op, changed_at or utcnow(), data)
        position = self.source._next_position()
        change = _Change(self.txid, position, line, op is Op.DELETE, record_id, data)
        self._pending.append(((user_id, kind), change))
        return position

    def upsert(
        self,
        user_id: str,
        category: Category | str,
        record_id: str,
        data: dict[str, Any],
        changed_at: datetime | None = None,
    ) -> int:
        return self.write(user_id, category, record_id, Op.UPSERT, data, changed_at)

    def delete(
        self,
        user_id: str,
        category: Category | str,
        record_id: str,
        changed_at: datetime | None = None,
    ) -> int:
        return self.write(user_id, category, record_id, Op.DELETE, None, changed_at)

    def commit(self) -> None:
        self.source._finish(self, self._pending)
        self._pending = []

    def rollback(self) -> None:
        self.source._finish(self, [])
        self._pending = []

    def __enter__(self) -> MemoryTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.is_open:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


class MemorySource(Source):
    """A thread-safe in-memory ``Source`` with explicit transactions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_txid = 1
        self._position = 0
        self._open: set[int] = set()
        self._feeds: dict[_Key, list[_Change]] = {}
        self.reads = 0  #: how many batches were handed out (lets tests see laziness)

    # -- writing ---------------------------------------------------------------------------

    def begin(self) -> MemoryTransaction:
        """Open a transaction; its id is fixed now, like a PostgreSQL xid on first write."""
        with self._lock:
            txid = self._next_txid
            self._next_txid += 1
            self._open.add(txid)
        return MemoryTransaction(self, txid)

    def upsert(
        self,
        user_id: str,
        category: Category | str,
        record_id: str,
        data: dict[str, Any],
        changed_at: datetime | None = None,
    ) -> int:
        """Write and commit one upsert in its own transaction; returns its txid."""
        with self.begin() as tx:
            tx.upsert(user_id, category, record_id, data, changed_at)
        return tx.txid

    def delete(
        self,
        user_id: str,
        category: Category | str,
        record_id: str,
        changed_at: datetime | None = None,
    ) -> int:
        """Write and commit one tombstone in its own transaction; returns its txid."""
        with self.begin() as tx:
            tx.delete(user_id, category, record_id, changed_at)
        return tx.txid

    def current_state(self, user_id: str, category: Category | str) -> dict[str, dict[str, Any]]:
        """Replay the committed feed: what a consumer that applied everything would hold."""
        state: dict[str, dict[str, Any]] = {}
        with self._lock:
            feed = list(self._feeds.get((user_id, Category(category).value), ()))
        for change in feed:
            if change.is_delete:
                state.pop(change.record_id, None)
            else:
                assert change.data is not None
                state[change.record_id] = change.data
        return state

    # -- Source ----------------------------------------------------------------------------

    def position(self) -> Position:
        with self._lock:
            xmin = min(self._open) if self._open else self._next_txid
            return Position(xmin, self._next_txid, tuple(sorted(self._open)))

    def read_changes(
        self,
        user_id: str,
        category: Category,
        since: Position,
        until: Position,
        batch_size: int,
    ) -> Generator[ChangeBatch, None, None]:
        if batch_size < 1:
            raise ValidationError(f"batch size must be at least 1, not {batch_size}")
        key = (user_id, Category(category).value)
        with self._lock:
            # Committed changes only are in the feed; pick those ``until`` sees and ``since``
            # did not, in feed order (a copy: later commits may insert into the list).
            wanted = [
                c for c in self._feeds.get(key, ()) if until.sees(c.txid) and not since.sees(c.txid)
            ]
        for start in range(0, len(wanted), batch_size):
            self.reads += 1
            yield ChangeBatch.from_lines([c.line for c in wanted[start : start + batch_size]])

    @contextmanager
    def read_state(self, user_id: str, category: Category, batch_size: int) -> Iterator[StateRead]:
        if batch_size < 1:
            raise ValidationError(f"batch size must be at least 1, not {batch_size}")
        key = (user_id, Category(category).value)
        with self._lock:
            position = Position(
                min(self._open) if self._open else self._next_txid,
                self._next_txid,
                tuple(sorted(self._open)),
            )
            latest: dict[str, _Change] = {}
            for change in self._feeds.get(key, ()):
                if change.is_delete:
                    latest.pop(change.record_id, None)
                else:
                    latest[change.record_id] = change
        lines = [change.line for change in latest.values()]

        def batches() -> Iterator[ChangeBatch]:
            for start in range(0, len(lines), batch_size):
                self.reads += 1
                yield ChangeBatch.from_lines(lines[start : start + batch_size])

        yield StateRead(position, batches())

    # -- internals -------------------------------------------------------------------------

    def _next_position(self) -> int:
        with self._lock:
            self._position += 1
            return self._position

    def _finish(self, tx: MemoryTransaction, changes: list[tuple[_Key, _Change]]) -> None:
        with self._lock:
            if not tx.is_open:
                raise ConflictError(f"transaction {tx.txid} is already finished")
            for key, change in changes:
                insort(self._feeds.setdefault(key, []), change)
            tx.is_open = False
            self._open.discard(tx.txid)
