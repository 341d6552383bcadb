"""The developer's side of the bucket: verify and apply delivered manifests, exactly once.

    from portability.consumer import SqliteStore, consume, open_bucket

    bucket = open_bucket("my-bucket", access_key_id=..., secret_access_key=...,
                         endpoint_url="https://s3.example.com")
    with SqliteStore("consumer.db") as store:
        report = consume(bucket, store, prefix="exports")
    print(report.to_dict())

Only manifested parts are read; every part is checked (size, SHA-256, record counts) and a
manifest is applied in one transaction with the stream's new position, so running again
applies only what is new and applying a manifest twice changes nothing. The bucket is treated
as hostile input: sizes are capped (``ConsumerLimits``), part keys must match their stream's
pattern in full, lines are parsed strictly, and with ``verify_keys`` only manifests signed by
one of them (``portability.signing``) are applied. The README's "Receiving your users' data"
describes the layout, the continuity rules, the limits and the store's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from portability.destinations.base import Destination
from portability.signing import VerifyKey

from ._apply import AppliedManifest, Progress
from ._blocks import iter_lines
from ._bucket import open_bucket
from ._consumer import Consumer, ConsumeReport, StreamProblem
from ._jsonl_store import JsonlStore, snapshot_name
from ._layout import Listing, StreamId, part_key_pattern, scan
from ._limits import DEFAULT_LIMITS, ConsumerLimits
from ._store import JOURNAL_MODES, SqliteStore
from ._verify import Position, RefusedObjectError, is_full_replay

__all__ = [
    "DEFAULT_LIMITS",
    "JOURNAL_MODES",
    "AppliedManifest",
    "ConsumeReport",
    "Consumer",
    "ConsumerLimits",
    "JsonlStore",
    "Listing",
    "Position",
    "Progress",
    "RefusedObjectError",
    "SqliteStore",
    "StreamId",
    "StreamProblem",
    "consume",
    "is_full_replay",
    "iter_lines",
    "open_bucket",
    "part_key_pattern",
    "scan",
    "snapshot_name",
]


def consume(
    destination: Destination,
    store: SqliteStore,
    *,
    prefix: str = "",
    on_progress: Callable[[Progress], None] | None = None,
    limits: ConsumerLimits = DEFAULT_LIMITS,
    verify_keys: Sequence[VerifyKey] | None = None,
) -> ConsumeReport:
    """One pass: apply every new manifest under ``prefix`` into ``store``.

    With ``verify_keys`` (``portability.signing.parse_verify_keys``) only manifests signed by
    one of them are applied.
    """
    consumer = Consumer(
        destination,
        store,
        prefix=prefix,
        on_progress=on_progress,
        limits=limits,
        verify_keys=verify_keys,
    )
    return consumer.run_once()
