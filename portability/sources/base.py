"""The ``Source`` contract: a per-user, per-category change feed read between positions, and
the current state read at one consistent position.

A position (``portability.sources.position.Position``) is a snapshot of the feed's writers.
``position()`` returns the current one; ``read_changes(user, category, a, b)`` yields, in feed
order, every change whose transaction is visible in ``b`` and not in ``a``. A committed
snapshot never changes, so reading the same pair twice yields the same changes in the same
order -- which is what lets a retried export rewrite byte-identical parts under the same keys.

``read_state(user, category)`` opens a consistent read of the user's current records (one
upsert line each, deletes simply absent) together with the position it was taken at: a stream
that replays the state and then reads changes from that position loses and doubles nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from portability.categories import Category
from portability.sources.position import Position

__all__ = ["TOMBSTONE_END", "ChangeBatch", "Source", "StateRead"]


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


@dataclass(frozen=True)
class StateRead:
    """An open read of a user's current records in one category, taken at ``position``."""

    position: Position
    batches: Iterator[ChangeBatch]


@runtime_checkable
class Source(Protocol):
    def position(self) -> Position:
        """The feed's position now: every change it makes visible is final."""
        ...

    def read_changes(
        self,
        user_id: str,
        category: Category,
        since: Position,
        until: Position,
        batch_size: int,
    ) -> Generator[ChangeBatch, None, None]:
        """Yield the changes visible in ``until`` and not in ``since``, in feed order, batched.

        Memory use is bounded by ``batch_size``: implementations stream (COPY, keyset pages),
        never load the whole range. The cost follows the changes read, not the feed's size.
        """
        ...

    def read_state(
        self, user_id: str, category: Category, batch_size: int
    ) -> AbstractContextManager[StateRead]:
        """Open a consistent read of the current records (upsert lines) and its position.

        The batches are valid while the context is open; memory is bounded by ``batch_size``.
        """
        ...
