"""Positions in the change feed: snapshots, not single ids.

A position is a snapshot of which writing transactions had committed, in PostgreSQL's text
form ``xmin:xmax:xip1,xip2,...`` (as PgQ's ticks are): every transaction id below ``xmin`` had
finished, none at or above ``xmax`` had, and ``xip`` lists those in between still in flight.
A delivery from position ``a`` to position ``b`` holds exactly the changes whose transaction is
visible in ``b`` and was not visible in ``a``:

    txid in a.xip  or  a.xmax <= txid       (not visible in a)
    and txid < b.xmax and txid not in b.xip (visible in b)

So a transaction that commits late is delivered once, by the first delivery whose upper
snapshot sees it, and a transaction that wrote nothing to the feed delays nobody: the reader
never waits for ``xmin`` to pass it. On a single-writer store (SQLite, the in-memory source)
a position is simply ``n:n:`` for the next feed id ``n``.

Positions are opaque to developers: manifests carry them as text, and part keys carry a short
digest of the (from, to) pair, so a key stays a pure function of what its part holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from portability.errors import ValidationError

__all__ = ["Position", "range_digest"]


@dataclass(frozen=True, slots=True)
class Position:
    """A snapshot of the feed's writers (see the module docstring)."""

    xmin: int
    xmax: int
    xip: tuple[int, ...] = ()

    @classmethod
    def at(cls, next_id: int) -> Position:
        """The position of a single-writer feed whose next id is ``next_id``."""
        return cls(next_id, next_id, ())

    @classmethod
    def parse(cls, text: str) -> Position:
        try:
            low, high, listed = text.split(":")
            xip = tuple(sorted(int(x) for x in listed.split(",") if x))
            position = cls(int(low), int(high), xip)
        except ValueError:
            raise ValidationError(f"position {text!r} is not 'xmin:xmax:xip,...'") from None
        if not 0 <= position.xmin <= position.xmax or any(
            not position.xmin <= x < position.xmax for x in xip
        ):
            raise ValidationError(f"position {text!r} is not a consistent snapshot")
        return position

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(str(x) for x in self.xip)}"

    def sees(self, txid: int) -> bool:
        """Whether a committed transaction ``txid`` is visible in this snapshot."""
        return txid < self.xmax and txid not in self.xip

    def covers(self, other: Position) -> bool:
        """Whether everything visible in ``other`` is visible here (this is not behind it)."""
        if self.xmax < other.xmax:
            return False
        return all(not other.sees(x) for x in self.xip)

    def sees_everything_below(self, txid: int) -> bool:
        """Whether every transaction id below ``txid`` is visible here (retention's test: rows
        below a deleted horizon were all delivered by a stream at this position)."""
        return self.xmax >= txid and all(x >= txid for x in self.xip)


def range_digest(start: Position | None, end: Position) -> str:
    """16 hex digits naming the delivery ``(start, end]``: the folder of its parts."""
    text = f"{start if start is not None else '-'}|{end}".encode()
    return hashlib.sha256(text).hexdigest()[:16]
