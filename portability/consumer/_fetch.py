"""Reading parts ahead of their use, so the bucket's latency hides behind applying.

The consumer announces, lazily, the order in which it will apply parts -- across manifests and
streams -- and takes them one by one. The fetcher keeps a few of the next ones in flight on
pool threads (each checked for size and SHA-256 there), bounded by a count and a byte budget:
memory holds at most the budget plus the part being applied, whatever the export's size.
A part announced but never taken (its stream stopped on a problem) is simply dropped.

The bucket is not trusted, so a part's stored size is compared with the manifest's ``bytes``
*before* it is downloaded: from the pass's listing when it has the key, else by a HEAD. A part
larger than its manifest says is never read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor, Future

from portability.destinations.base import Destination
from portability.errors import NotFoundError
from portability.manifest import PartEntry

from ._verify import RefusedObjectError, check_part_bytes

__all__ = ["PartFetcher", "fetch_part"]

MiB = 1 << 20


def fetch_part(
    destination: Destination,
    part: PartEntry,
    manifest_key: str,
    stored_size: int | None = None,
) -> bytes:
    """Read a part and check its stored bytes against the manifest.

    ``stored_size`` is the size the bucket's listing gave for the key; without it the size
    is asked for (HEAD). Either way a size other than the manifest's refuses the part unread.
    """
    if stored_size is None:
        info = destination.head_object(part.key)
        if info is None:
            raise RefusedObjectError(part.key, f"listed by {manifest_key} but not found")
        stored_size = info.size
    if stored_size != part.bytes:
        raise RefusedObjectError(
            part.key,
            f"stored size is {stored_size} bytes, the manifest says {part.bytes} (not downloaded)",
        )
    try:
        body = destination.get_object(part.key)
    except NotFoundError:
        raise RefusedObjectError(part.key, f"listed by {manifest_key} but not found") from None
    check_part_bytes(part, body)
    return body


class PartFetcher:
    def __init__(
        self,
        destination: Destination,
        pool: Executor,
        *,
        ahead: int = 8,
        budget_bytes: int = 16 * MiB,
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        """``sizes``: stored sizes by key, from the listing (keys missing are HEADed)."""
        self._destination = destination
        self._sizes: Mapping[str, int] = sizes or {}
        self._pool = pool
        self._ahead = ahead
        self._budget = budget_bytes
        self._upcoming: Iterator[tuple[PartEntry, str]] = iter(())
        self._next: tuple[PartEntry, str] | None = None
        self._in_flight: deque[tuple[PartEntry, Future[bytes]]] = deque()
        self._in_flight_bytes = 0

    def expect(self, upcoming: Iterator[tuple[PartEntry, str]]) -> None:
        """Announce the parts (with their manifest keys) in the order they will be taken."""
        self.close()
        self._upcoming = upcoming
        self._next = None
        self._top_up()

    def take(self, part: PartEntry, manifest_key: str) -> bytes:
        """The checked bytes of ``part``; raises ``RefusedObjectError`` if they do not match."""
        while self._in_flight:
            head, future = self._in_flight.popleft()
            self._in_flight_bytes -= head.bytes
            if head is part:
                self._top_up()
                return future.result()
            future.cancel()  # announced, but its stream stopped before it was needed
        if self._next is not None and self._next[0] is part:
            self._next = None
        body = fetch_part(self._destination, part, manifest_key, self._sizes.get(part.key))
        self._top_up()
        return body

    def close(self) -> None:
        for _, future in self._in_flight:
            future.cancel()
        self._in_flight.clear()
        self._in_flight_bytes = 0

    def _top_up(self) -> None:
        """Start reads while fewer than ``ahead`` are in flight and the next one fits the
        budget (one is always allowed, however large)."""
        while len(self._in_flight) < self._ahead:
            if self._next is None:
                self._next = next(self._upcoming, None)
                if self._next is None:
                    return
            part, manifest_key = self._next
            if self._in_flight and self._in_flight_bytes + part.bytes > self._budget:
                return
            self._next = None
            future = self._pool.submit(
                fetch_part, self._destination, part, manifest_key, self._sizes.get(part.key)
            )
            self._in_flight.append((part, future))
            self._in_flight_bytes += part.bytes
