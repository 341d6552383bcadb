"""The store's bulk path: already-valid new records into state tables and feed, in chunks.

For the seeder, which writes millions of records it built correct by construction: no checks
beyond the ids, no conflict handling. PostgreSQL gets binary ``COPY`` through the psycopg
connection; SQLite gets ``executemany``, with ``position`` and ``txid`` assigned after the
current maximum as ``store.write_changes`` does. Everything runs in the caller's transaction.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from queue import Full, Queue
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, insert

from portability.categories import Category
from portability.platform.shapes import SHAPES as _SHAPES
from portability.platform.shapes import Data, copy_types
from portability.platform.tables import PlatformChange
from portability.records import Op
from portability.sources.sql import SQLITE_FEED_TOP

__all__ = ["LoadReport", "SeedRecord", "fast_change_line", "load_records"]

_CHANGES = cast(Table, PlatformChange.__table__)
_CHANGE_COLUMNS = ("user_id", "category", "record_id", "op", "changed_at", "line")
_CHANGE_TYPES = copy_types(_CHANGES, _CHANGE_COLUMNS)


#: One record for the bulk path, in feed order: ``(user id, category, record id, changed_at,
#: data)`` with ``changed_at`` as ``format_timestamp`` text. A plain tuple: the seeder makes
#: millions and a named tuple's constructor costs a microsecond each.
SeedRecord = tuple[str, Category, str, str, Data]


@dataclass(frozen=True)
class LoadReport:
    records: int
    per_category: dict[Category, int]


def load_records(
    conn: Connection, records: Iterable[SeedRecord], *, chunk_size: int = 20_000
) -> LoadReport:
    """Bulk-insert new records (state rows + one upsert change each), in feed order.

    For the seeder: records must be valid and new (no conflict handling, no checks beyond the
    ids). Memory is bounded by ``chunk_size``. PostgreSQL gets ``COPY``, with the records of the
    next chunk prepared on a helper thread while the server ingests the current one (the two
    costs are about equal, and psycopg releases the GIL while it waits); SQLite ``executemany``.
    """
    per_category = dict.fromkeys(Category, 0)
    chunks = _prepared_chunks(records, chunk_size, per_category)
    with _gc_paused():
        if conn.dialect.name == "postgresql":
            dbapi: Any = conn.connection.driver_connection
            with dbapi.cursor() as cursor, _prefetched(chunks) as ready:
                for chunk in ready:
                    _copy_chunk(cursor, chunk)
        else:
            for chunk in chunks:
                _insert_chunk(conn, chunk)
    return LoadReport(records=sum(per_category.values()), per_category=per_category)


def fast_change_line(record_id: str, op: Op, changed_at: str, data: Data | None) -> str:
    """``change_line`` for a ``changed_at`` already formatted: the same bytes, no datetime.

    The bulk path formats millions of timestamps; ``strftime`` would dominate. A unit test
    holds this equal to ``change_line``.
    """
    return orjson.dumps(
        {"id": record_id, "op": op.value, "changed_at": changed_at, "data": data}
    ).decode()


@dataclass
class _Chunk:
    state: dict[Category, list[tuple[Any, ...]]]
    changes: list[tuple[str, str, str, str, datetime, str]]


def _prepared_chunks(
    records: Iterable[SeedRecord], chunk_size: int, per_category: dict[Category, int]
) -> Iterator[_Chunk]:
    """Records -> typed column tuples for each table, ready for binary COPY or executemany."""
    stream = iter(records)
    parse = datetime.fromisoformat
    dumps = orjson.dumps
    to_columns = {c: _SHAPES[c].to_columns for c in Category}
    names = {c: c.value for c in Category}
    while True:
        batch = list(islice(stream, chunk_size))
        if not batch:
            return
        chunk = _Chunk(state={c: [] for c in Category}, changes=[])
        state, changes = chunk.state, chunk.changes
        for user_id, kind, record_id, changed_at, data in batch:
            # fast_change_line, inlined: this loop runs a million times per benchmark seed.
            line = dumps(
                {"id": record_id, "op": "upsert", "changed_at": changed_at, "data": data}
            ).decode()
            state[kind].append((*to_columns[kind](user_id, data), line))
            changes.append((user_id, names[kind], record_id, "upsert", parse(changed_at), line))
        for kind, rows in state.items():
            per_category[kind] += len(rows)
        yield chunk


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of short-lived dicts pass through.

    They hold no cycles (reference counting frees them), but they trip the collector's
    thresholds constantly: a quarter of the seeding time went to collections finding nothing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def _prefetched(chunks: Iterator[_Chunk], depth: int = 2) -> Iterator[Iterator[_Chunk]]:
    """Run ``chunks`` on a helper thread, ``depth`` ahead; errors re-raise in the caller."""
    queue: Queue[_Chunk | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: _Chunk | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer(chunk):
                    return
            offer(None)
        except BaseException as exc:  # handed to the consuming thread, re-raised there
            offer(exc)

    def consume() -> Iterator[_Chunk]:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    worker = threading.Thread(target=produce, name="seed-prepare", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        worker.join()


def _copy_chunk(cursor: Any, chunk: _Chunk) -> None:
    """Binary ``COPY`` of one chunk through the psycopg connection, in the caller's transaction.

    Binary saves the server parsing timestamps and checking text escapes: about a third of its
    time on this load.
    """
    for category, rows in chunk.state.items():
        if rows:
            shape = _SHAPES[category]
            _copy(cursor, shape.table.name, shape.stored_columns, shape.copy_types, rows)
    _copy(cursor, _CHANGES.name, _CHANGE_COLUMNS, _CHANGE_TYPES, chunk.changes)


def _copy(
    cursor: Any,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with cursor.copy(statement) as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(row)


def _insert_chunk(conn: Connection, chunk: _Chunk) -> None:
    for category, rows in chunk.state.items():
        if rows:
            shape = _SHAPES[category]
            params = [dict(zip(shape.stored_columns, row, strict=True)) for row in rows]
            conn.execute(insert(shape.table), params)
    base = int(conn.exec_driver_sql(SQLITE_FEED_TOP).scalar() or 0)
    changes = [
        {
            "position": base + offset,
            "txid": base + offset,
            **dict(zip(_CHANGE_COLUMNS, row, strict=True)),
        }
        for offset, row in enumerate(chunk.changes, 1)
    ]
    conn.execute(insert(_CHANGES), changes)
