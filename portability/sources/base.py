"""The ``Source`` contract: a per-user, per-category change feed read between two watermarks.

A watermark is an integer such that every change with a feed key below it is final: no
transaction can still add one. ``watermark()`` returns the current safe upper bound;
``read(user, category, lo, hi)`` yields, in feed order, every change whose key ``k`` has
``lo <= k < hi``. Because the range below the watermark never changes again, reading the same
range twice yields the same changes in the same order -- which is what lets a retried export
rewrite byte-identical parts under the same object keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from portability.categories import Category

__all__ = ["ChangeBatch", "Source"]


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Consecutive changes in feed order.

    ``lines`` are complete JSON records (see ``portability.records``), without newlines.
    ``deletes`` counts the tombstones among them.
    """

    lines: list[str]
    deletes: int = 0

    def __len__(self) -> int:
        return len(self.lines)


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

    def has_changes(
        self, user_id: str, category: Category, from_watermark: int, to_watermark: int
    ) -> bool:
        """Whether the range holds at least one change (an index probe, not a count)."""
        ...
