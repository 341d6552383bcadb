"""Finding the streams and manifests in a bucket by listing it once.

Every key under the prefix is sorted into one of two heaps: manifests, grouped by stream and
numbered by their sequence, and everything else (parts, leftovers of crashed attempts, files
that are not ours). Which of the everything-else the consumer reads is decided by the
manifests alone; this module only names things.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from portability.destinations.base import Destination
from portability.manifest import manifest_key, part_suffix, stream_prefix

__all__ = ["Listing", "StreamId", "part_key_pattern", "scan"]

_MANIFEST = re.compile(
    r"^(?P<user>[^/]+)/(?P<category>[^/]+)/g(?P<grant>\d+)/manifests/(?P<seq>\d{10})\.json$"
)


@dataclass(frozen=True, slots=True, order=True)
class StreamId:
    """One grant's stream of one category of one user: the unit of ordering and position."""

    user_id: str
    category: str
    grant_id: int

    def folder(self, prefix: str) -> str:
        """The stream's key prefix under ``prefix`` (ends with ``/``)."""
        return stream_prefix(prefix, self.user_id, self.category, self.grant_id)

    def __str__(self) -> str:
        return f"{self.user_id}/{self.category}/g{self.grant_id}"


@dataclass
class Listing:
    """What one listing of the prefix found."""

    #: stream -> {sequence: manifest key}
    manifests: dict[StreamId, dict[int, str]] = field(default_factory=dict)
    #: every key that is not a well-formed manifest key
    other_keys: set[str] = field(default_factory=set)
    #: every key listed -> its stored size in bytes (checked before a download)
    sizes: dict[str, int] = field(default_factory=dict)

    def streams(self) -> list[StreamId]:
        return sorted(self.manifests)


def part_key_pattern(stream_folder: str, compression: str) -> re.Pattern[str]:
    """What every part key of the stream in ``stream_folder`` looks like, in full.

    Use it with ``fullmatch``: a manifest may list only keys of this exact shape, so no part
    of another stream (``…/parts/../../u2/…``), another compression or another folder can be
    smuggled in. The one place that knows the shape of a part key on the consumer's side.
    """
    return re.compile(
        re.escape(stream_folder)
        + r"parts/[0-9a-f]{16}/part-[0-9]{5}"
        + re.escape(part_suffix(compression))
    )


def normalize_prefix(prefix: str) -> str:
    """``exports`` and ``/exports/`` name the same folder; an empty prefix is the bucket root."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def parse_manifest_key(prefix: str, key: str) -> tuple[StreamId, int] | None:
    """The stream and sequence a key names, or ``None`` when it is not a manifest key."""
    head = normalize_prefix(prefix)
    if not key.startswith(head):
        return None
    match = _MANIFEST.match(key[len(head) :])
    if match is None or match["user"] in {".", ".."}:
        return None
    stream = StreamId(match["user"], match["category"], int(match["grant"]))
    sequence = int(match["seq"])
    # Only the canonical spelling counts, so one manifest cannot hide behind two keys.
    if sequence < 1 or manifest_key(stream.folder(prefix), sequence) != key:
        return None
    return stream, sequence


def sort_keys(prefix: str, keys: Iterable[str]) -> Listing:
    listing = Listing()
    for key in keys:
        parsed = parse_manifest_key(prefix, key)
        if parsed is None:
            listing.other_keys.add(key)
            continue
        stream, sequence = parsed
        listing.manifests.setdefault(stream, {})[sequence] = key
    return listing


def scan(destination: Destination, prefix: str) -> Listing:
    """List every object under ``prefix`` once and sort the keys.

    Memory is proportional to the number of objects (keys and sizes), never to their size.
    """
    sizes: dict[str, int] = {}

    def keys() -> Iterator[str]:
        for info in destination.list_objects(normalize_prefix(prefix)):
            sizes[info.key] = info.size
            yield info.key

    listing = sort_keys(prefix, keys())
    listing.sizes = sizes
    return listing
