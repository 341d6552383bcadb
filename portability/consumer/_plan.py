"""Planning a stream: which of its manifests are new, readable, and where applying starts.

Manifests of many streams are read together on pool threads (they are small and latency is
what costs); the plan of each stream is then pure data. ``upcoming_parts`` turns plans into
the order in which parts will be needed, so the fetcher can read ahead across manifests and
streams, skipping what a gap or a refusal will stop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from portability.destinations.base import Destination
from portability.manifest import Manifest, PartEntry
from portability.signing import SignatureError, VerifyKey, verify_manifest
from portability.strict_json import loads_strict

from ._layout import StreamId
from ._limits import DEFAULT_LIMITS, ConsumerLimits
from ._verify import (
    Position,
    RefusedObjectError,
    check_manifest,
    continuity_problem,
    replay_start,
)

__all__ = ["PendingManifest", "StreamPlan", "plan_streams", "upcoming_parts"]


@dataclass(frozen=True, slots=True)
class PendingManifest:
    """A manifest newer than the stream's position; ``error`` when it cannot be applied."""

    sequence: int
    key: str
    manifest: Manifest | None
    error: str = ""

    @property
    def usable(self) -> Manifest | None:
        return None if self.error else self.manifest


@dataclass
class StreamPlan:
    stream: StreamId
    position: Position | None
    already_applied: int
    pending: list[PendingManifest] = field(default_factory=list)
    #: Index in ``pending`` where applying starts: the last full replay, else 0.
    start: int = 0


def read_manifest(
    destination: Destination,
    prefix: str,
    stream: StreamId,
    sequence: int,
    key: str,
    *,
    limits: ConsumerLimits = DEFAULT_LIMITS,
    listed_size: int | None = None,
    verify_keys: Sequence[VerifyKey] | None = None,
) -> PendingManifest:
    """Read, size-check, (with ``verify_keys``) signature-check and check one manifest.

    The manifest is parsed once, strictly (no member twice), and that very parse is both what
    the signature covers and what is applied.
    """
    cap = limits.max_manifest_bytes
    if listed_size is not None and listed_size > cap:
        return _refused(sequence, key, f"is {listed_size} bytes, over the limit of {cap}; not read")
    raw = destination.get_object(key)
    if len(raw) > cap:
        return _refused(sequence, key, f"is {len(raw)} bytes, over the limit of {cap}")
    if verify_keys is not None:
        try:
            verify_manifest(raw, verify_keys)
        except SignatureError as exc:
            return _refused(sequence, key, str(exc))
    try:
        manifest = Manifest.model_validate(loads_strict(raw))
    except ValueError as exc:  # StrictJSONError and pydantic's ValidationError are ValueErrors
        first = str(exc).splitlines()[0]
        return _refused(sequence, key, f"not a valid manifest: {first}")
    try:
        check_manifest(manifest, key, stream, prefix, limits)
        if manifest.sequence != sequence:
            raise RefusedObjectError(key, f"says it is manifest {manifest.sequence}")
    except RefusedObjectError as exc:
        return PendingManifest(sequence, key, manifest, str(exc))
    return PendingManifest(sequence, key, manifest)


def _refused(sequence: int, key: str, problem: str) -> PendingManifest:
    return PendingManifest(sequence, key, None, f"{key}: {problem}")


def plan_streams(
    destination: Destination,
    prefix: str,
    manifests: dict[StreamId, dict[int, str]],
    positions: dict[StreamId, Position],
    pool: Executor,
    *,
    limits: ConsumerLimits = DEFAULT_LIMITS,
    sizes: Mapping[str, int] | None = None,
    verify_keys: Sequence[VerifyKey] | None = None,
) -> list[StreamPlan]:
    """Read every new manifest of ``manifests``' streams (in parallel) and plan each stream.

    ``sizes`` (from the listing) lets an oversized manifest be refused unread; with
    ``verify_keys`` a manifest that is not signed by one of them is refused.
    """
    plans: list[StreamPlan] = []
    wanted: list[tuple[StreamPlan, int, str]] = []
    for stream in sorted(manifests):
        position = positions.get(stream)
        after = position.sequence if position else 0
        keys = manifests[stream]
        plan = StreamPlan(stream, position, sum(1 for seq in keys if seq <= after))
        plans.append(plan)
        wanted.extend((plan, seq, keys[seq]) for seq in sorted(keys) if seq > after)
    listed = sizes or {}

    def read(item: tuple[StreamPlan, int, str]) -> PendingManifest:
        plan, sequence, key = item
        return read_manifest(
            destination,
            prefix,
            plan.stream,
            sequence,
            key,
            limits=limits,
            listed_size=listed.get(key),
            verify_keys=verify_keys,
        )

    for (plan, _, _), pending in zip(wanted, pool.map(read, wanted), strict=True):
        plan.pending.append(pending)
    for plan in plans:
        plan.start = replay_start([p.usable for p in plan.pending])
    return plans


def upcoming_parts(
    plans: Sequence[StreamPlan], stopped: Iterable[StreamId] | set[StreamId]
) -> Iterator[tuple[PartEntry, str]]:
    """The parts the consumer will apply, in order, as far as can be told before applying.

    Lazy: ``stopped`` (streams that hit a problem while applying) is consulted as it goes.
    """
    for plan in plans:
        previous = plan.position
        for item in plan.pending[plan.start :]:
            manifest = item.usable
            if manifest is None or continuity_problem(previous, manifest, item.key):
                break
            for part in manifest.parts:
                if plan.stream in stopped:
                    break
                yield part, item.key
            previous = Position(manifest.sequence, manifest.position.to, item.key)
