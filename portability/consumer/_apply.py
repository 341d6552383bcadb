"""Applying one manifest: fetch, verify and apply its parts inside one store transaction.

Verification and application happen in one pass over each part: the stored bytes are checked
(size, SHA-256) as soon as they arrive, then decompressed in chunks and applied in order, and
the per-part record counts are compared at the end of the part. Any mismatch raises
``IntegrityError`` naming the part, and the transaction -- every record of the manifest --
is rolled back.

Memory: ``Destination.get_object`` returns a whole object, so the part being applied is held
whole (compressed) while the ``PartFetcher`` reads the next ones within its byte budget;
decompressed text is handled in blocks of ~1 MiB, inflated on a pool thread a few blocks ahead.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from portability.manifest import Manifest, PartEntry

from ._blocks import PartLimitError, blocks_in_background, iter_blocks
from ._decode import LineError, decode_block
from ._fetch import PartFetcher
from ._layout import StreamId
from ._limits import DEFAULT_LIMITS, ConsumerLimits
from ._store import ManifestTransaction, SqliteStore
from ._verify import Position, RefusedObjectError, check_part_counts, is_full_replay

__all__ = ["AppliedManifest", "Progress", "apply_manifest"]

#: Parts at least this large (compressed) are decompressed on a pool thread.
BACKGROUND_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Progress:
    """Where the manifest being applied stands; reported after every part."""

    stream: StreamId
    sequence: int
    manifest_key: str
    parts_done: int
    parts_total: int
    records_done: int
    records_total: int
    seconds: float


@dataclass(frozen=True, slots=True)
class AppliedManifest:
    stream: StreamId
    sequence: int
    manifest_key: str
    is_full_replay: bool
    parts: int
    upserts: int
    deletes: int
    seconds: float

    @property
    def records(self) -> int:
        return self.upserts + self.deletes


def _apply_part(
    txn: ManifestTransaction,
    user_id: str,
    part: PartEntry,
    body: bytes,
    compression: str,
    pool: Executor,
    limits: ConsumerLimits,
) -> tuple[int, int]:
    """Apply one verified part in order; returns ``(upserts, deletes)``."""
    upserts = deletes = 0
    line = 1
    # Inflating on another thread pays off for large parts only.
    blocks = (
        iter_blocks(body, compression, limits)
        if len(body) < BACKGROUND_BYTES
        else blocks_in_background(body, compression, pool, limits=limits)
    )
    try:
        for block in blocks:
            decoded = decode_block(block, user_id, line, limits.max_line_bytes)
            for is_upsert, rows in decoded.runs:
                if is_upsert:
                    txn.upsert(rows)
                else:
                    txn.delete(rows)
            upserts += decoded.upserts
            deletes += decoded.deletes
            line += decoded.lines
    except LineError as exc:
        raise RefusedObjectError(part.key, f"cannot be read at {exc}") from None
    except PartLimitError as exc:
        raise RefusedObjectError(part.key, f"refused: {exc}") from None
    except (zlib.error, ValueError) as exc:  # zstandard's ZstdError is a ValueError
        raise RefusedObjectError(part.key, f"cannot be decompressed: {exc}") from None
    check_part_counts(part, upserts, deletes)
    return upserts, deletes


def apply_manifest(
    store: SqliteStore,
    stream: StreamId,
    manifest: Manifest,
    key: str,
    expected: Position | None,
    *,
    fetcher: PartFetcher,
    pool: Executor,
    on_progress: Callable[[Progress], None] | None = None,
    limits: ConsumerLimits = DEFAULT_LIMITS,
) -> AppliedManifest:
    """Verify and apply every part of ``manifest`` atomically, then move the position.

    Raises ``IntegrityError`` (nothing applied) when any part differs from the manifest.
    """
    started = time.perf_counter()
    upserts = deletes = 0
    with store.manifest_transaction(stream, manifest, key, expected) as txn:
        for index, part in enumerate(manifest.parts, start=1):
            body = fetcher.take(part, key)
            part_upserts, part_deletes = _apply_part(
                txn, stream.user_id, part, body, manifest.compression, pool, limits
            )
            upserts += part_upserts
            deletes += part_deletes
            del body
            if on_progress is not None:
                on_progress(
                    Progress(
                        stream=stream,
                        sequence=manifest.sequence,
                        manifest_key=key,
                        parts_done=index,
                        parts_total=len(manifest.parts),
                        records_done=upserts + deletes,
                        records_total=manifest.records,
                        seconds=time.perf_counter() - started,
                    )
                )
    return AppliedManifest(
        stream=stream,
        sequence=manifest.sequence,
        manifest_key=key,
        is_full_replay=is_full_replay(manifest),
        parts=len(manifest.parts),
        upserts=upserts,
        deletes=deletes,
        seconds=time.perf_counter() - started,
    )
