"""One scheduler tick: claim due schedules in bounded batches, write their runs, enqueue.

Each batch is its own transaction: claim (locked), decide, insert runs, advance schedules,
commit — and only then enqueue the new run ids. A crash
between commit and enqueue loses nothing: the runs stay ``queued`` and the reconciler
(``schedules.reconcile``) sends them again after ``reconcile_after_seconds``; a worker that
receives a run already taken drops it (``portability.runs.claim_run`` returns False).

A tick drains every schedule due at its ``now`` (unless ``max_batches`` or ``should_stop``
ends it early), so each batch is a safe place to stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from portability.db.base import utcnow
from portability.db.engine import transaction
from portability.dispatch import EnqueueRuns
from schedules.claim import claim_due_schedules, mark_unsent, record_decisions
from schedules.decide import Action, decide
from schedules.runtime import SchedulerRuntime

__all__ = ["EnqueueRuns", "TickResult", "run_tick"]

log = logging.getLogger(__name__)


@dataclass
class TickResult:
    """What one tick did. ``disabled`` counts schedules ended for consent or expiry."""

    claimed: int = 0
    created: int = 0
    skipped: int = 0
    disabled: int = 0
    batches: int = 0
    run_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_tick(
    runtime: SchedulerRuntime,
    enqueue: EnqueueRuns,
    now: datetime | None = None,
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TickResult:
    """Claim the schedules due at ``now`` and run them, batch after batch until none is left.

    Without ``now`` each batch uses the current time (a long catch-up tick stamps its runs
    with when they were really queued). ``batch_size`` defaults to
    ``settings.scheduler_batch_size``. Safe to call from several processes at once (see
    ``schedules.claim``). If ``enqueue`` raises, the runs of that batch are already committed;
    the error propagates and the reconciler re-sends them later.
    """
    settings = runtime.settings
    size = batch_size or settings.scheduler_batch_size
    result = TickResult()
    fixed_now = now
    while True:
        now = fixed_now or utcnow()
        with transaction(runtime.sessions) as session:
            claimed = claim_due_schedules(session, now, size)
            decided = [
                (due, decide(due, now, max_jitter_seconds=settings.scheduler_max_jitter_seconds))
                for due in claimed
            ]
            run_ids = record_decisions(
                session, decided, now=now, max_attempts=settings.run_max_attempts
            )
        result.batches += 1
        result.claimed += len(claimed)
        result.created += len(run_ids)
        result.run_ids.extend(run_ids)
        for due, decision in decided:
            if decision.action is Action.SKIP:
                result.skipped += 1
                log.info("schedule %s skipped a fire: %s", due.id, decision.reason)
            elif decision.reason is not None:
                result.disabled += 1
                log.info("schedule %s disabled: %s", due.id, decision.reason)
        if run_ids:
            _send(runtime, enqueue, run_ids)
        if (
            len(claimed) < size
            or (max_batches is not None and result.batches >= max_batches)
            or (should_stop is not None and should_stop())
        ):
            break
    if result.claimed:
        log.info(
            "tick: %d due, %d runs created, %d skipped, %d disabled in %d batches",
            result.claimed,
            result.created,
            result.skipped,
            result.disabled,
            result.batches,
        )
    return result


def _send(runtime: SchedulerRuntime, enqueue: EnqueueRuns, run_ids: list[int]) -> None:
    try:
        enqueue(run_ids)
    except Exception:
        log.error(
            "%d runs are committed but could not be enqueued; the reconciler will send them "
            "once they have been queued for reconcile_after_seconds",
            len(run_ids),
        )
        try:
            with transaction(runtime.sessions) as session:
                mark_unsent(session, run_ids)
        except Exception:
            log.exception("could not record that runs %s were not enqueued", run_ids[:10])
        raise
