"""``--format jsonl``: current state written out as one JSON Lines file per user and category.

The working state and the positions still live in the SQLite file (that is what makes a
manifest atomic and a second run a no-op); after every pass, each ``(user, category)`` that a
manifest touched is rewritten as ``{out}/{category}/{snapshot_name(user_id)}`` -- one line per
current record, ``{"user_id", "id", "changed_at", "data"}``, ordered by id -- through a
temporary file and a rename, so a reader never sees half a snapshot.

User ids come from the bucket's keys, so they are not trusted as file names: the name is a
readable slug of the id (lower case ``a-z0-9_-``, at most 48 characters) and 16 hex digits of
the SHA-256 of the exact id, e.g. ``u-1001-3b5e...jsonl``. It is the same on every file system
(no case folding, NUL, separators, dots, reserved names like ``CON``, or length limits to
trip on), and two ids never share a file. Which snapshots are due is recorded in
the same transaction as the manifest, so a crash before the rewrite is repaired by the next
pass. Rows are streamed from SQLite: memory does not grow with a user's data.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import orjson

from ._store import SqliteStore
from ._verify import CATEGORIES

__all__ = ["JsonlStore", "snapshot_name"]

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
SLUG_CHARS = 48


def snapshot_name(user_id: str) -> str:
    """The snapshot file name of a user: ``{slug}-{16 hex of SHA-256(user_id)}.jsonl``."""
    digest = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    slug = _UNSAFE.sub("_", user_id.lower())[:SLUG_CHARS].strip("_-")
    return f"{slug}-{digest}.jsonl" if slug else f"{digest}.jsonl"


class JsonlStore(SqliteStore):
    track_snapshots = True

    def __init__(self, path: str | Path, out_dir: str | Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.out_dir = Path(out_dir)

    def snapshot_path(self, category: str, user_id: str) -> Path:
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        return self.out_dir / category / snapshot_name(user_id)

    def finish_pass(self) -> None:
        for user_id, category in self.pending_snapshots():
            self.write_snapshot(category, user_id)
            self.snapshot_written(user_id, category)

    def write_snapshot(self, category: str, user_id: str) -> Path:
        """Rewrite one user's snapshot of one category (empty when nothing is left)."""
        path = self.snapshot_path(category, user_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        head = b'{"user_id":' + orjson.dumps(user_id) + b',"id":'
        with tmp.open("wb") as out:
            for record_id, changed_at, data in self.raw_records(category, user_id):
                out.write(
                    head
                    + orjson.dumps(record_id)
                    + b',"changed_at":'
                    + orjson.dumps(changed_at)
                    + b',"data":'
                    + data.encode()
                    + b"}\n"
                )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        return path
