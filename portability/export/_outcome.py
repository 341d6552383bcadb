"""How a run ends: the outcome types and the mapping from what stopped it to its status.

* consent broken (before or during) -> ``cancelled``, reason ``consent``, nothing more written;
* transient (S3 5xx, timeouts, lost connections, stream busy) -> back to ``queued`` with
  exponential backoff while attempts remain, else ``failed``;
* permanent (access denied, no such bucket, another app's destination...) -> ``failed`` at
  once with what to fix;
* the run moved under us (cancelled, taken over) -> ``conflict``: nothing to record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from portability.db.models import Run, RunStatus
from portability.errors import (
    CategoryBusyError,
    ConflictError,
    ConsentError,
    PortabilityError,
    SourceError,
)
from portability.events.producers import run_failed_permanently
from portability.export._backoff import retry_delay
from portability.runs import finish_run, release_for_retry
from portability.runtime import Runtime

__all__ = ["RunOutcome", "decisiveness", "fail", "finish", "outcome_of"]

log = logging.getLogger("portability.export")

#: Seconds a run waits before trying again when another run holds one of its streams.
_BUSY_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class RunOutcome:
    """What became of a run: its status, and whether to try again in ``retry_in`` seconds.

    ``dropped``: the message was a duplicate for a finished run; ``deferred``: another worker
    holds a live lease, so the message comes back when that lease would lapse (a dead worker's
    run is taken over then, without waiting for the reconciler).
    """

    run_id: int
    status: str
    retry_in: float | None = None
    message: str | None = None


def decisiveness(exc: BaseException) -> int:
    """Rank of an error among several streams' failures (lowest wins)."""
    if not isinstance(exc, Exception):
        return 0  # a crash or an interrupt: nothing else matters
    order: list[type[BaseException]] = [ConsentError, ConflictError]
    for rank, family in enumerate(order, start=1):
        if isinstance(exc, family):
            return rank
    if isinstance(exc, PortabilityError) and not exc.is_transient:
        return 3
    if isinstance(exc, PortabilityError | DBAPIError):
        return 5
    return 4  # an unexpected error: fail the run as internal


def outcome_of(runtime: Runtime, run_id: int, exc: Exception) -> RunOutcome:
    """Map what stopped a run to its outcome (the leases are already released)."""
    if isinstance(exc, ConsentError):
        return finish(runtime, run_id, RunStatus.CANCELLED, exc)
    if isinstance(exc, ConflictError):
        log.warning("run %s stopped: %s", run_id, exc)
        return RunOutcome(run_id, "conflict", message=str(exc))
    if isinstance(exc, CategoryBusyError):
        return _retry(runtime, run_id, exc, delay=_BUSY_RETRY_SECONDS, refund_attempt=True)
    if isinstance(exc, DBAPIError):
        return _retry_or_fail(
            runtime,
            run_id,
            SourceError("the platform's database failed", detail=str(exc.orig or exc)),
        )
    if isinstance(exc, PortabilityError):
        if exc.is_transient:
            return _retry_or_fail(runtime, run_id, exc)
        return finish(runtime, run_id, RunStatus.FAILED, exc)
    log.error("run %s failed with an internal error", run_id, exc_info=exc)
    internal = PortabilityError(
        "an internal error stopped the run; the platform's staff can see its diagnostic",
        detail=f"{type(exc).__name__}: {exc}",
    )
    return finish(runtime, run_id, RunStatus.FAILED, internal)


def finish(runtime: Runtime, run_id: int, status: RunStatus, exc: PortabilityError) -> RunOutcome:
    message = str(exc)
    log.warning("run %s %s: %s", run_id, status.value, message)
    with runtime.sessions.begin() as session:
        moved = finish_run(
            session, run_id, status, error=message, reason=exc.reason, detail=exc.detail
        )
        if moved and status is RunStatus.FAILED:
            failing_after = runtime.settings.events_destination_failing_after
            run_failed_permanently(session, run_id, failing_after=failing_after)
    return RunOutcome(run_id, status.value, message=message)


def fail(runtime: Runtime, run_id: int, exc: PortabilityError) -> RunOutcome:
    return finish(runtime, run_id, RunStatus.FAILED, exc)


def _retry_or_fail(runtime: Runtime, run_id: int, exc: PortabilityError) -> RunOutcome:
    with runtime.sessions.begin() as session:
        run = session.get(Run, run_id)
        attempts, max_attempts = (run.attempts, run.max_attempts) if run else (0, 0)
    if attempts >= max_attempts:
        message = f"gave up after {attempts} attempts: {exc}"
        with runtime.sessions.begin() as session:
            finish_run(
                session,
                run_id,
                RunStatus.FAILED,
                error=message,
                reason=exc.reason,
                detail=exc.detail,
            )
        log.warning("run %s failed: %s", run_id, message)
        return RunOutcome(run_id, RunStatus.FAILED.value, message=message)
    delay = retry_delay(
        attempts, base=runtime.settings.retry_backoff_base, cap=runtime.settings.retry_backoff_max
    )
    return _retry(runtime, run_id, exc, delay=delay)


def _retry(
    runtime: Runtime,
    run_id: int,
    exc: PortabilityError,
    *,
    delay: float,
    refund_attempt: bool = False,
) -> RunOutcome:
    with runtime.sessions.begin() as session:
        moved = release_for_retry(
            session,
            run_id,
            error=str(exc),
            reason=exc.reason,
            delay_seconds=delay,
            detail=exc.detail,
        )
        if moved and refund_attempt:
            session.execute(update(Run).where(Run.id == run_id).values(attempts=Run.attempts - 1))
    if not moved:
        return RunOutcome(run_id, "conflict", message="run moved before it could be retried")
    log.info("run %s will retry in %.1fs: %s", run_id, delay, exc)
    return RunOutcome(run_id, RunStatus.QUEUED.value, retry_in=delay, message=str(exc))
