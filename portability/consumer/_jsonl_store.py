"""``--format jsonl``: current state written out as one JSON Lines file per user and category.

The working state and the positions still live in the SQLite file (that is what makes a
manifest atomic and a second run a no-op); after every pass, each ``(user, category)`` that a
manifest touched is rewritten as ``{out}/{category}/{user_id}.jsonl`` -- one line per current
record, ``{"user_id", "id", "changed_at", "data"}``, ordered by id -- through a temporary file
and a rename, so a reader never sees half a snapshot. Which snapshots are due is recorded in
the same transaction as the manifest, so a crash before the rewrite is repaired by the next
pass. Rows are streamed from SQLite: memory does not grow with a user's data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from ._store import SqliteStore

__all__ = ["JsonlStore"]


class JsonlStore(SqliteStore):
    track_snapshots = True

    def __init__(self, path: str | Path, out_dir: str | Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.out_dir = Path(out_dir)

    def snapshot_path(self, category: str, user_id: str) -> Path:
        return self.out_dir / category / f"{user_id}.jsonl"

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
