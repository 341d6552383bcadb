"""Writing a delivery's parts: batches of lines, rewritten for the app, cut into parts.

Consent is re-read before every batch and before every part is completed (the moment an
object becomes visible in the bucket); the manifest's own check is ``_close``'s. A part whose
check fails is aborted, never completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from portability.destinations.base import Destination
from portability.export._hooks import ExportHooks
from portability.export._parts import PartWriter
from portability.manifest import PartEntry, part_key
from portability.sources.base import TOMBSTONE_END, ChangeBatch
from portability.sources.position import Position

__all__ = ["PartPlan", "write_parts"]


@dataclass(frozen=True)
class PartPlan:
    """Where and how one delivery's parts are written."""

    stream: str
    category: str
    start: Position | None
    end: Position
    compression: str
    max_records: int
    #: Rewrites a block of lines for the app (user pseudonyms); bytes in, bytes out.
    rewrite: Callable[[bytes], bytes]


def write_parts(
    plan: PartPlan,
    batches: Iterator[ChangeBatch],
    destination: Destination,
    check: Callable[[], None],
    hooks: ExportHooks,
    written: list[str],
) -> list[PartEntry]:
    """Stream ``batches`` into parts; each completed part's key is appended to ``written``
    as soon as it exists (so a consent stop can delete what no manifest will list)."""
    parts: list[PartEntry] = []
    writer: PartWriter | None = None

    def close(part: PartWriter) -> None:
        check()  # the part becomes an object now
        parts.append(part.close())
        written.append(part.key)
        hooks.after_part(part.key)

    try:
        for batch in batches:
            hooks.between_batches(plan.category)
            check()
            body, records, deletes = plan.rewrite(batch.body), batch.records, batch.deletes
            while records:
                if writer is None:
                    key = part_key(plan.stream, plan.start, plan.end, len(parts), plan.compression)
                    writer = PartWriter(destination, key, plan.compression)
                room = plan.max_records - writer.records
                if records <= room:
                    writer.write(body, records, deletes)
                    records = 0
                else:  # the part fills up inside this batch: cut it after `room` records
                    cut = _after_nth_newline(body, room)
                    head, body = body[:cut], body[cut:]
                    head_deletes = head.count(TOMBSTONE_END)
                    writer.write(head, room, head_deletes)
                    records, deletes = records - room, deletes - head_deletes
                if writer.records >= plan.max_records:
                    close(writer)
                    writer = None
        if writer is not None:
            close(writer)
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return parts


def _after_nth_newline(body: bytes, n: int) -> int:
    """Offset just past the ``n``-th record of a JSON Lines block."""
    end = 0
    for _ in range(n):
        end = body.index(b"\n", end) + 1
    return end
