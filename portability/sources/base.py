"""The ``Source`` contract: a per-user, per-category change feed read between two watermarks.

A watermark is an integer such that every change with a feed key below it is final: no
transaction can still add one. ``watermark()`` returns the current safe upper bound;
``read(user, category, lo, hi)`` yields, in feed order, every change whose key ``k`` has
``lo <= k < hi``. Because the range below the watermark never changes again, reading the same
range twice yields the same changes in the same order -- which is what lets a retried export
rewrite byte-identical parts under the same object keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from portability.categories import Category

__all__ = ["TOMBSTONE_END", "ChangeBatch", "Source"]


#: A tombstone line ends with this (``records.change_line`` always puts ``data`` last); an
#: upsert line ends with its data object's ``}``. Counting it in a block is exact.
TOMBSTONE_END = b',"data":null}\n'


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Consecutive changes in feed order, as one block of JSON Lines.

    ``body`` holds ``records`` complete JSON records (see ``portability.records``), each ending
    with a newline -- exactly the bytes a part holds, so the engine never touches a record.
    ``deletes`` counts the tombstones among them.
    """

    body: bytes
    records: int
    deletes: int = 0

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> ChangeBatch:
        body = ("\n".join(lines) + "\n").encode() if lines else b""
        return cls(body=body, records=len(lines), deletes=body.count(TOMBSTONE_END))

    @property
    def lines(self) -> list[str]:
        """The records as text, one per change (for tests and small consumers)."""
        # Not str.splitlines(): JSON text may hold U+2028 and U+0085 unescaped.
        return self.body.decode().split("\n")[:-1] if self.body else []

    def __len__(self) -> int:
        return self.records


@runtime_checkable
class Source(Protocol):
    def watermark(self) -> int:
        """The exclusive upper bound below which the feed is final right now."""
        ...

    def read(
        self,
        user_id: str,
        category: Category,
        from_watermark: int,
        to_watermark: int,
        batch_size: int,
    ) -> Iterator[ChangeBatch]:
        """Yield the changes with ``from_watermark <= key < to_watermark``, in order, batched.

        Memory use is bounded by ``batch_size``: implementations stream (server-side cursor,
        keyset pagination), never load the whole range.
        """
        ...
