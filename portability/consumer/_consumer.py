"""One consumer pass: list, plan each stream from its position, apply what may be applied.

A stream (user, category, grant) is applied strictly in manifest order. Its first problem --
a gap, a manifest that contradicts itself, a part that differs from its manifest -- stops that
stream for this pass and is reported; the other streams go on. Nothing of a refused manifest
is applied, and the next pass tries again from the same position.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from portability.destinations.base import Destination
from portability.errors import ConflictError, DestinationTransientError
from portability.signing import VerifyKey

from ._apply import AppliedManifest, Progress, apply_manifest
from ._fetch import MiB, PartFetcher
from ._layout import Listing, StreamId, scan
from ._limits import DEFAULT_LIMITS, ConsumerLimits
from ._plan import PendingManifest, StreamPlan, plan_streams, upcoming_parts
from ._store import SqliteStore
from ._verify import CATEGORIES, Position, RefusedObjectError, continuity_problem

__all__ = ["ConsumeReport", "Consumer", "StreamProblem"]

#: How many ignored keys a report names (it always counts them all).
IGNORED_SAMPLE = 20
#: Streams whose manifests are read together (bounds the manifests held in memory).
STREAMS_PER_BATCH = 256


@dataclass(frozen=True, slots=True)
class StreamProblem:
    """Why a stream stopped in this pass. ``kind`` is ``gap``, ``integrity`` or ``conflict``."""

    stream: StreamId
    kind: str
    key: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": str(self.stream),
            "kind": self.kind,
            "key": self.key,
            "message": self.message,
        }


@dataclass
class ConsumeReport:
    """What one pass did. ``ok`` is false when any stream stopped on a problem."""

    streams: int = 0
    applied: list[AppliedManifest] = field(default_factory=list)
    already_applied: int = 0
    superseded: int = 0
    pending: int = 0
    ignored_objects: int = 0
    ignored_sample: list[str] = field(default_factory=list)
    problems: list[StreamProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def records(self) -> int:
        return sum(a.records for a in self.applied)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "streams": self.streams,
            "manifests_applied": len(self.applied),
            "manifests_already_applied": self.already_applied,
            "manifests_superseded": self.superseded,
            "manifests_pending": self.pending,
            "records": self.records,
            "upserts": sum(a.upserts for a in self.applied),
            "deletes": sum(a.deletes for a in self.applied),
            "ignored_objects": self.ignored_objects,
            "ignored_sample": self.ignored_sample,
            "problems": [p.to_dict() for p in self.problems],
            "seconds": round(self.seconds, 3),
        }


class Consumer:
    """Applies what a bucket holds under ``prefix`` into ``store``, exactly once.

    Safe to run again at any time, from a fresh process: positions live in the store, so a
    pass applies only manifests newer than the last one applied per stream.
    """

    def __init__(
        self,
        destination: Destination,
        store: SqliteStore,
        *,
        prefix: str = "",
        prefetch_parts: int = 8,
        prefetch_bytes: int = 16 * MiB,
        threads: int = 8,
        on_progress: Callable[[Progress], None] | None = None,
        limits: ConsumerLimits = DEFAULT_LIMITS,
        verify_keys: Sequence[VerifyKey] | None = None,
    ) -> None:
        """``limits`` caps what one object may make the consumer read (``ConsumerLimits``).
        With ``verify_keys`` only manifests signed by one of them are applied; an unsigned or
        forged one stops its stream with an ``integrity`` problem."""
        self.destination = destination
        self.store = store
        self.prefix = prefix
        self.prefetch_parts = prefetch_parts
        self.prefetch_bytes = prefetch_bytes
        self.threads = max(threads, prefetch_parts + 2)
        self.on_progress = on_progress
        self.limits = limits
        self.verify_keys = list(verify_keys) if verify_keys is not None else None

    def run_once(self) -> ConsumeReport:
        """One pass over the bucket; see the module docstring for what stops a stream."""
        started = time.perf_counter()
        report = ConsumeReport()
        listing = scan(self.destination, self.prefix)
        positions = self.store.positions()
        listed: set[str] = set()
        streams = listing.streams()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="consume") as pool:
            fetcher = PartFetcher(
                self.destination,
                pool,
                ahead=self.prefetch_parts,
                budget_bytes=self.prefetch_bytes,
                sizes=listing.sizes,
            )
            try:
                for first in range(0, len(streams), STREAMS_PER_BATCH):
                    batch = {
                        s: listing.manifests[s] for s in streams[first : first + STREAMS_PER_BATCH]
                    }
                    self._run_batch(batch, listing, positions, pool, fetcher, listed, report)
            finally:
                fetcher.close()
        listed |= self.store.applied_part_keys()
        ignored = sorted(key for key in listing.other_keys if key not in listed)
        report.ignored_objects = len(ignored)
        report.ignored_sample = ignored[:IGNORED_SAMPLE]
        self.store.finish_pass()
        report.seconds = time.perf_counter() - started
        return report

    def watch(
        self,
        interval: float,
        *,
        stop: threading.Event | None = None,
        on_report: Callable[[ConsumeReport], None] | None = None,
        on_transient: Callable[[DestinationTransientError], None] | None = None,
    ) -> None:
        """Run passes every ``interval`` seconds until ``stop`` is set.

        A transient destination fault skips one pass (``on_transient``) instead of ending the
        loop; anything else propagates.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                report = self.run_once()
            except DestinationTransientError as exc:
                if on_transient is not None:
                    on_transient(exc)
            else:
                if on_report is not None:
                    on_report(report)
            stop.wait(interval)

    # -- streams ---------------------------------------------------------------------------

    def _run_batch(
        self,
        batch: dict[StreamId, dict[int, str]],
        listing: Listing,
        positions: dict[StreamId, Position],
        pool: ThreadPoolExecutor,
        fetcher: PartFetcher,
        listed: set[str],
        report: ConsumeReport,
    ) -> None:
        known = {s: keys for s, keys in batch.items() if s.category in CATEGORIES}
        for stream in sorted(set(batch) - set(known)):
            report.streams += 1
            report.problems.append(
                StreamProblem(stream, "integrity", str(stream), f"{stream}: unknown category")
            )
        plans = plan_streams(
            self.destination,
            self.prefix,
            known,
            positions,
            pool,
            limits=self.limits,
            sizes=listing.sizes,
            verify_keys=self.verify_keys,
        )
        stopped: set[StreamId] = set()
        fetcher.expect(upcoming_parts(plans, stopped))
        for plan in plans:
            report.streams += 1
            report.already_applied += plan.already_applied
            report.superseded += plan.start
            for item in plan.pending:
                if item.manifest is not None:
                    listed.update(part.key for part in item.manifest.parts)
            if not self._run_plan(plan, pool, fetcher, report):
                stopped.add(plan.stream)

    def _run_plan(
        self,
        plan: StreamPlan,
        pool: ThreadPoolExecutor,
        fetcher: PartFetcher,
        report: ConsumeReport,
    ) -> bool:
        """Apply one stream's plan in order; False when it stopped on a problem."""
        stream, position = plan.stream, plan.position
        for index in range(plan.start, len(plan.pending)):
            item = plan.pending[index]
            problem = _refusal(stream, item, position)
            if problem is None:
                assert item.manifest is not None
                try:
                    applied = apply_manifest(
                        self.store,
                        stream,
                        item.manifest,
                        item.key,
                        position,
                        fetcher=fetcher,
                        pool=pool,
                        on_progress=self.on_progress,
                        limits=self.limits,
                    )
                except RefusedObjectError as exc:
                    problem = StreamProblem(stream, "integrity", exc.key, str(exc))
                except ConflictError as exc:
                    problem = StreamProblem(stream, "conflict", item.key, str(exc))
                else:
                    report.applied.append(applied)
                    position = Position(item.manifest.sequence, item.manifest.position.to, item.key)
                    continue
            report.problems.append(problem)
            report.pending += len(plan.pending) - index
            return False
        return True


def _refusal(
    stream: StreamId, item: PendingManifest, position: Position | None
) -> StreamProblem | None:
    if item.manifest is None or item.error:
        return StreamProblem(stream, "integrity", item.key, item.error)
    gap = continuity_problem(position, item.manifest, item.key)
    if gap is not None:
        return StreamProblem(stream, "gap", item.key, gap)
    return None
