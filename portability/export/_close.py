"""Closing a delivery: the manifest last, then the stream moves, in one consented transaction.

The manifest is written while ``ConsentGuard.hold`` keeps the grant, app and user rows
share-locked, and the stream's advance commits in that same transaction: a revocation commits
before the check (nothing is written) or after the stream moved. If the commit is lost after
the manifest was written, the stream's planned sequence tells the next run to look for the
manifest and ``adopt_written_manifests`` catches the stream up to it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from sqlalchemy import Connection, Engine

from portability.destinations.base import Destination
from portability.errors import ConflictError, IntegrityError, ObjectExistsError, PortabilityError
from portability.events.producers import stream_replayed
from portability.export import _streams
from portability.export._plan import MANIFEST_SHA_METADATA, record_result
from portability.manifest import Manifest, manifest_key
from portability.signing import ManifestSigner, sign_manifest

__all__ = ["adopt_written_manifests", "delete_unlisted", "put_manifest", "record_delivery"]

log = logging.getLogger("portability.export")


def put_manifest(
    destination: Destination, key: str, manifest: Manifest, signer: ManifestSigner
) -> tuple[Manifest, str]:
    """Write ``manifest``, signed, unless the same delivery is already there; returns the
    manifest as stored and the SHA-256 of its bytes (kept on the stream for the history
    check)."""
    body = sign_manifest(manifest.to_json(), signer)
    digest = hashlib.sha256(body).hexdigest()
    try:
        destination.put_object(
            key, body, if_none_match=True, metadata={MANIFEST_SHA_METADATA: digest}
        )
    except ObjectExistsError:
        raw = destination.get_object(key)
        existing = Manifest.from_json(raw)
        if not existing.same_delivery(manifest):
            raise ConflictError(
                f"manifest {key} was written by run {existing.run_id} for another range"
            ) from None
        return existing, hashlib.sha256(raw).hexdigest()
    return manifest, digest


def record_delivery(
    conn: Connection,
    stream_id: int,
    run_id: int | None,
    key: str,
    manifest: Manifest,
    digest: str,
    *,
    result_for_run: int | None,
) -> None:
    """Move the stream past ``manifest`` and, for the run that wrote it, record its result."""
    _streams.advance(
        conn,
        stream_id,
        run_id=run_id,
        start=manifest.position.from_,
        end=manifest.position.to,
        sequence=manifest.sequence,
        manifest_key=key,
        manifest_sha256=digest,
        replay_reason=manifest.replay_reason if manifest.reset else None,
    )
    if manifest.reset:  # the replay is announced in the transaction that records it
        stream_replayed(
            conn,
            stream_id,
            run_id=manifest.run_id,
            reason=manifest.replay_reason,
            sequence=manifest.sequence,
            manifest_key=key,
            records=manifest.records,
        )
    if result_for_run is not None:
        record_result(
            conn,
            result_for_run,
            manifest.category,
            start=manifest.position.from_,
            end=manifest.position.to,
            sequence=manifest.sequence,
            reason=manifest.replay_reason,
            records=manifest.records,
            size=manifest.bytes,
            parts=len(manifest.parts),
            key=key,
        )


def adopt_written_manifests(
    engine: Engine,
    destination: Destination,
    stream: _streams.StreamState,
    folder: str,
    run_id: int,
) -> None:
    """A manifest beyond the stream's position means an attempt died between the manifest
    and the commit: the delivery is visible to consumers, so the stream must catch up to it."""
    while stream.is_pending:
        sequence = stream.sequence + 1
        key = manifest_key(folder, sequence)
        if destination.head_object(key) is None:
            return
        raw = destination.get_object(key)
        written = Manifest.from_json(raw)
        here = str(stream.position) if stream.position is not None else None
        if not written.reset and written.position.from_ != here:
            raise IntegrityError(
                f"manifest {key} starts at {written.position.from_} but the stream is at "
                f"{here}; ask for a replay of the stream to recover"
            )
        with engine.begin() as conn:
            record_delivery(
                conn,
                stream.id,
                run_id,
                key,
                written,
                hashlib.sha256(raw).hexdigest(),
                result_for_run=run_id if written.run_id == run_id else None,
            )
            stream = _streams.read_stream(conn, stream.id)


def delete_unlisted(destination: Destination, keys: Iterable[str]) -> None:
    """Remove parts that no manifest will ever list (a delivery stopped for consent).

    Best effort per key: a failure is logged and the rest still go.
    """
    for key in keys:
        try:
            destination.delete_object(key)
        except PortabilityError as exc:
            log.warning("could not delete unmanifested part %s: %s", key, exc)
