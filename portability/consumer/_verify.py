"""What may be applied: manifest checks, part checks and stream continuity, as pure functions.

Nothing here reads the bucket or the store. Every refusal is an ``IntegrityError`` whose
message names the object at fault, so a developer can go and look at it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from portability.categories import Category
from portability.errors import IntegrityError
from portability.manifest import Manifest, PartEntry
from portability.records import SCHEMA_VERSION

from ._layout import StreamId, part_key_pattern
from ._limits import DEFAULT_LIMITS, ConsumerLimits

__all__ = [
    "Position",
    "RefusedObjectError",
    "check_manifest",
    "check_part_bytes",
    "check_part_counts",
    "continuity_problem",
    "is_full_replay",
    "replay_start",
]

MANIFEST_KIND = "portability.manifest"
COMPRESSIONS = frozenset({"gzip", "zstd", "none"})
CATEGORIES = frozenset(c.value for c in Category)


class RefusedObjectError(IntegrityError):
    """A manifest or part that cannot be applied; ``key`` names the object at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Position:
    """The last manifest applied for one stream: where the next one must start."""

    sequence: int
    #: The feed position the last applied manifest ended at (opaque text).
    position_to: str
    manifest_key: str


def is_full_replay(manifest: Manifest) -> bool:
    """A manifest that replaces everything held for its user and category.

    Every replay (a stream's first delivery, a requested one, lost history, retention) is
    marked ``reset`` and starts from no position (``position.from`` is null).
    """
    return manifest.reset or manifest.position.from_ is None


def check_manifest(
    manifest: Manifest,
    key: str,
    stream: StreamId,
    prefix: str,
    limits: ConsumerLimits = DEFAULT_LIMITS,
) -> None:
    """Refuse a manifest that contradicts its own key or itself, before any part is read."""
    if manifest.kind != MANIFEST_KIND:
        raise RefusedObjectError(key, f"kind is {manifest.kind!r}, not {MANIFEST_KIND!r}")
    if manifest.schema_version > SCHEMA_VERSION:
        raise RefusedObjectError(
            key,
            f"written with schema_version {manifest.schema_version}, this consumer "
            f"reads up to {SCHEMA_VERSION}: upgrade the consumer",
        )
    found = (manifest.user, manifest.category, manifest.authorization_id)
    expected = (stream.user_id, stream.category, stream.grant_id)
    if found != expected:
        raise RefusedObjectError(key, f"manifest is for {found}, but its key says {expected}")
    if manifest.category not in CATEGORIES:
        raise RefusedObjectError(key, f"unknown category {manifest.category!r}")
    if manifest.compression not in COMPRESSIONS:
        raise RefusedObjectError(key, f"unknown compression {manifest.compression!r}")
    if manifest.reset != (manifest.position.from_ is None):
        raise RefusedObjectError(key, "a reset has no position.from, an increment always has")
    pattern = part_key_pattern(stream.folder(prefix), manifest.compression)
    seen: set[str] = set()
    for part in manifest.parts:
        # A part outside the stream's folder could smuggle another user's data in.
        if not pattern.fullmatch(part.key):
            raise RefusedObjectError(key, f"lists {part.key!r}, which is not a part of {stream}")
        if part.bytes > limits.max_part_bytes:
            raise RefusedObjectError(
                key,
                f"lists {part.key} of {part.bytes} bytes, more than this consumer's limit "
                f"of {limits.max_part_bytes} per part",
            )
        if part.key in seen:
            raise RefusedObjectError(key, f"lists {part.key} twice")
        seen.add(part.key)
        if part.records != part.upserts + part.deletes:
            raise RefusedObjectError(key, f"{part.key} has records != upserts + deletes")
    if sum(p.records for p in manifest.parts) != manifest.records:
        raise RefusedObjectError(key, f"part record counts do not add up to {manifest.records}")
    if sum(p.bytes for p in manifest.parts) != manifest.bytes:
        raise RefusedObjectError(key, f"part sizes do not add up to {manifest.bytes}")


def check_part_bytes(part: PartEntry, body: bytes) -> None:
    """Size and SHA-256 of the stored (still compressed) bytes, as the manifest promises."""
    if len(body) != part.bytes:
        raise RefusedObjectError(
            part.key, f"size is {len(body)} bytes, the manifest says {part.bytes}"
        )
    digest = hashlib.sha256(body).hexdigest()
    if digest != part.sha256:
        raise RefusedObjectError(part.key, f"SHA-256 is {digest}, the manifest says {part.sha256}")


def check_part_counts(part: PartEntry, upserts: int, deletes: int) -> None:
    if (upserts, deletes) != (part.upserts, part.deletes):
        raise RefusedObjectError(
            part.key,
            f"holds {upserts + deletes} records ({upserts} upserts, {deletes} "
            f"deletes), the manifest says {part.records} ({part.upserts} upserts, "
            f"{part.deletes} deletes)",
        )


def replay_start(manifests: Sequence[Manifest | None]) -> int:
    """Index of the last full replay among pending manifests (0 when there is none).

    Everything before a full replay is superseded by it, gaps included, so applying from
    there is both correct and the least work. ``None`` stands for a manifest that could not
    be read or was refused; it is never a place to start.
    """
    for index in range(len(manifests) - 1, -1, -1):
        manifest = manifests[index]
        if manifest is not None and is_full_replay(manifest):
            return index
    return 0


def continuity_problem(previous: Position | None, manifest: Manifest, key: str) -> str | None:
    """Why ``manifest`` cannot be applied after ``previous``, or ``None`` when it can."""
    if is_full_replay(manifest):
        return None
    expected_sequence = previous.sequence + 1 if previous else 1
    expected_from = previous.position_to if previous else None
    if manifest.sequence != expected_sequence:
        missing = (
            f"manifest {expected_sequence}"
            if manifest.sequence == expected_sequence + 1
            else f"manifests {expected_sequence}..{manifest.sequence - 1}"
        )
        return f"gap before {key}: {missing} of this stream not found"
    if manifest.position.from_ != expected_from:
        return (
            f"gap before {key}: it starts at position {manifest.position.from_}, "
            f"the previous manifest ended at {expected_from}"
        )
    return None
