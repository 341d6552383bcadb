"""Executing one run: claim it, check consent, export each category, record the outcome.

Plain Python, no Celery: the worker task calls ``execute_run`` and maps its ``RunOutcome`` to
"done" or "retry in N seconds". Every way out of a run is decided here:

* consent broken (before or during) -> ``cancelled``, reason ``consent``, nothing more written;
* transient (S3 5xx, timeouts, lost connections, category busy) -> back to ``queued`` with
  exponential backoff while attempts remain, else ``failed``;
* permanent (access denied, no such bucket, ...) -> ``failed`` at once with what to fix.
A failed run keeps its checkpoints: a re-run continues where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from portability.categories import Category
from portability.consent import check_consent, exportable_categories
from portability.db.base import utcnow
from portability.db.models import (
    Access,
    App,
    Authorization,
    Destination,
    PlatformUser,
    Run,
    RunCategory,
    RunStatus,
)
from portability.errors import (
    CategoryBusyError,
    ConflictError,
    ConsentError,
    NotFoundError,
    PortabilityError,
    SourceError,
)
from portability.export import _checkpoints
from portability.export._backoff import retry_delay
from portability.export._category import (
    EMPTY,
    CategoryJob,
    ConsentCheck,
    Planned,
    export_category,
    read_planned,
)
from portability.export._hooks import ExportHooks
from portability.manifest import stream_prefix
from portability.runs import claim_run, finish_run, release_for_retry
from portability.runtime import Runtime

__all__ = ["RunOutcome", "execute_run"]

log = logging.getLogger("portability.export")

#: Seconds a run waits before trying again when another run holds its category.
_BUSY_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class RunOutcome:
    """What became of a run: its status, and whether to try again in ``retry_in`` seconds."""

    run_id: int
    status: str
    retry_in: float | None = None
    message: str | None = None


def execute_run(runtime: Runtime, run_id: int, *, hooks: ExportHooks | None = None) -> RunOutcome:
    """Run ``run_id`` to an outcome. Safe to call twice for the same run, concurrently or not:
    the second call finds the run claimed and returns ``dropped``."""
    hooks = hooks or ExportHooks()
    opened = _open(runtime, run_id)
    if isinstance(opened, RunOutcome):
        return opened
    empty: list[str] = []  # categories that found nothing new (appended from category threads)
    try:
        if opened.refusal is not None:
            raise opened.refusal
        note = _export(runtime, opened, hooks, empty)
    except BaseException as exc:
        _release(runtime, run_id, empty)
        if not isinstance(exc, Exception):
            raise  # a crash or an interrupt: the leases are free, the run's lease lapses
        return _failed(runtime, run_id, exc)
    with runtime.sessions.begin() as session:
        _close_categories(session.connection(), run_id, empty)
        finished = finish_run(session, run_id, RunStatus.SUCCEEDED, error=note)
    if not finished:
        return RunOutcome(run_id, "conflict", message="run moved before it could finish")
    return RunOutcome(run_id, RunStatus.SUCCEEDED.value, message=note)


@dataclass(frozen=True)
class _Opened:
    """A claimed run and everything its export needs, read in the claiming transaction."""

    run: Run
    grant: Authorization
    app: App
    user: PlatformUser
    destination: Destination
    #: This run's ``run_categories`` rows as earlier attempts left them.
    previous: dict[str, Planned]
    #: Why the run may not go on (consent, a missing row), raised once the claim is committed.
    refusal: PortabilityError | None


def _open(runtime: Runtime, run_id: int) -> _Opened | RunOutcome:
    """Claim the run, load it with its grant, app, user and destination, check consent and
    mark a single-use grant used: one transaction. A refusal is kept, not raised, so that the
    claim commits and the run can be closed with the reason."""
    settings = runtime.settings
    with runtime.sessions.begin() as session:
        if not claim_run(session, run_id, lease_seconds=settings.lease_seconds):
            status = session.scalar(select(Run.status).where(Run.id == run_id)) or "missing"
            log.info(
                "run %s not claimable (%s): duplicate or early message dropped", run_id, status
            )
            return RunOutcome(run_id, "dropped", message=f"run is {status}")
        try:
            run, grant, app, user, destination = _load(session, run_id)
        except NotFoundError as missing:
            failure = missing  # committed with the claim, then recorded below
        else:
            refusal: PortabilityError | None = None
            try:
                check_consent(
                    app=app,
                    grant=grant,
                    user=user,
                    now=utcnow(),
                    eligible_countries=settings.eligible_countries,
                    single_already_claimed_by_this_run=grant.used_by_run_id
                    in {run.id, run.rerun_of},
                )
                _claim_single_use(session, run, grant)
            except PortabilityError as exc:
                refusal = exc
            previous = read_planned(session.connection(), run_id)
            return _Opened(run, grant, app, user, destination, previous, refusal)
    return _finish(runtime, run_id, RunStatus.FAILED, failure)


def _export(runtime: Runtime, opened: _Opened, hooks: ExportHooks, empty: list[str]) -> str | None:
    settings = runtime.settings
    run, grant, user, dest_row = opened.run, opened.grant, opened.user, opened.destination
    allowed, refused = exportable_categories(grant.category_set, run.category_set)
    if not allowed:
        raise ConsentError(
            f"none of the requested categories ({', '.join(sorted(refused))}) is granted"
        )
    job_base = dict(
        run_id=run.id,
        app_id=opened.app.id,
        authorization_id=grant.id,
        user_id=user.id,
        categories=sorted(c.value for c in allowed),
        compression=dest_row.compression or settings.export_compression,
        started_at=run.started_at or utcnow(),
    )
    destination = runtime.open_destination(dest_row)
    upper = runtime.source.watermark()  # outside any transaction of ours (SQLite locks)
    ref = _RunRef(run.id, grant.id, run.rerun_of)

    def probe(conn: Connection) -> None:
        # A cancel or a takeover shows up as a lost lease at the next renewal; between
        # renewals only consent is re-read (one query per batch).
        _check(conn, ref, settings.eligible_countries)

    def deliver(category: Category) -> None:
        consent = ConsentCheck(runtime, run.id, probe)
        consent.category = (grant.id, category.value)
        job = CategoryJob(
            category=category,
            stream=stream_prefix(dest_row.prefix, user.id, category.value, grant.id),
            watermark=upper,
            previous=opened.previous.get(category.value),
            **job_base,  # type: ignore[arg-type]
        )
        if export_category(runtime, job, destination, consent, hooks) == EMPTY:
            empty.append(category.value)

    _each_category(sorted(allowed), deliver, settings.export_category_concurrency)
    if refused:
        return f"not granted, skipped: {', '.join(sorted(refused))}"
    return None


def _each_category(
    categories: list[Category], deliver: Callable[[Category], None], concurrency: int
) -> None:
    """Deliver the categories, several at once when allowed.

    Categories are independent streams (own lease, checkpoint and manifests), so their
    database and S3 round trips overlap; an incremental run's latency becomes that of its
    slowest category rather than the sum. Every category checks consent for itself before
    each batch. When several fail, the most decisive error is raised: consent first (the run
    is cancelled), then a lost run, then permanent, then transient failures.
    """
    if concurrency <= 1 or len(categories) <= 1:
        for category in categories:
            deliver(category)
        return
    failures: list[BaseException] = []
    workers = min(concurrency, len(categories))
    with ThreadPoolExecutor(workers, thread_name_prefix="portability-category") as pool:
        for future in [pool.submit(deliver, category) for category in categories]:
            try:
                future.result()
            except BaseException as exc:  # collected; the decisive one is re-raised below
                failures.append(exc)
    if failures:
        raise min(failures, key=_decisiveness)


def _decisiveness(exc: BaseException) -> int:
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


def _load(
    session: Session, run_id: int
) -> tuple[Run, Authorization, App, PlatformUser, Destination]:
    """The run with its grant, app, user and destination, in one query."""
    row = session.execute(
        select(Run, Authorization, App, PlatformUser, Destination)
        .join(Authorization, Authorization.id == Run.authorization_id)
        .join(App, App.id == Run.app_id)
        .join(Destination, Destination.id == Run.destination_id)
        .join(PlatformUser, PlatformUser.id == Authorization.user_id)
        .where(Run.id == run_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"run {run_id} refers to a missing grant, app, destination or user")
    return row.Run, row.Authorization, row.App, row.PlatformUser, row.Destination


@dataclass(frozen=True)
class _RunRef:
    """What a consent re-check needs to know of its run."""

    run_id: int
    authorization_id: int
    rerun_of: int | None


def _check(conn: Connection, run: _RunRef, eligible: frozenset[str]) -> None:
    """Re-read the grant, its user and the app in one round trip and apply the consent rules.

    Runs before every category and batch, so it reads plain columns (no ORM session) into
    transient objects for ``check_consent``.
    """
    row = conn.execute(_CONSENT, {"p_authorization": run.authorization_id}).one_or_none()
    if row is None:
        raise ConsentError(f"authorization {run.authorization_id} no longer exists")
    grant = Authorization(
        id=run.authorization_id,
        app_id=row.app_id,
        user_id=row.user_id,
        access=row.access,
        revoked_at=row.revoked_at,
        revoke_reason=row.revoke_reason,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by_run_id=row.used_by_run_id,
    )
    check_consent(
        app=App(id=row.app_id, status=row.status),
        grant=grant,
        user=PlatformUser(id=row.user_id, country=row.country),
        now=utcnow(),
        eligible_countries=eligible,
        single_already_claimed_by_this_run=row.used_by_run_id in {run.run_id, run.rerun_of},
    )


# Built once: it runs before every category and batch (building costs more than running).
_CONSENT = (
    select(
        Authorization.app_id,
        Authorization.user_id,
        Authorization.access,
        Authorization.revoked_at,
        Authorization.revoke_reason,
        Authorization.expires_at,
        Authorization.used_at,
        Authorization.used_by_run_id,
        App.status,
        PlatformUser.country,
    )
    .join(App, App.id == Authorization.app_id)
    .join(PlatformUser, PlatformUser.id == Authorization.user_id)
    .where(Authorization.id == bindparam("p_authorization"))
)


def _claim_single_use(session: Session, run: Run, grant: Authorization) -> None:
    """Mark a single-use grant used by this run (a guarded update: two runs cannot both win)."""
    if grant.access != Access.SINGLE or grant.used_by_run_id == run.id:
        return
    moved = session.execute(
        update(Authorization)
        .where(
            Authorization.id == grant.id,
            (Authorization.used_by_run_id.is_(None))
            | (Authorization.used_by_run_id == run.rerun_of),
        )
        .values(used_at=grant.used_at or utcnow(), used_by_run_id=run.id)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise ConsentError(f"authorization {grant.id} is single-use and was already used")


def _failed(runtime: Runtime, run_id: int, exc: Exception) -> RunOutcome:
    """Map what stopped a run to its outcome (the leases are already released)."""
    if isinstance(exc, ConsentError):
        return _finish(runtime, run_id, RunStatus.CANCELLED, exc)
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
        return _finish(runtime, run_id, RunStatus.FAILED, exc)
    log.error("run %s failed with an internal error", run_id, exc_info=exc)
    internal = PortabilityError(
        "an internal error stopped the run; the platform's staff can see its diagnostic",
        detail=f"{type(exc).__name__}: {exc}",
    )
    return _finish(runtime, run_id, RunStatus.FAILED, internal)


def _finish(runtime: Runtime, run_id: int, status: RunStatus, exc: PortabilityError) -> RunOutcome:
    message = str(exc)
    log.warning("run %s %s: %s", run_id, status.value, message)
    with runtime.sessions.begin() as session:
        finish_run(session, run_id, status, error=message, reason=exc.reason, detail=exc.detail)
    return RunOutcome(run_id, status.value, message=message)


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


def _close_categories(conn: Connection, run_id: int, empty: list[str]) -> None:
    """Free the run's category leases; categories that found nothing are recorded ``empty``
    and their planned delivery withdrawn."""
    _checkpoints.release_leases(conn, run_id, empty=empty)
    if empty:
        conn.execute(
            update(RunCategory)
            .where(
                RunCategory.run_id == run_id,
                RunCategory.category.in_(empty),
                RunCategory.status == "planned",
            )
            .values(status=EMPTY)
        )


def _release(runtime: Runtime, run_id: int, empty: list[str]) -> None:
    try:
        with runtime.engine.begin() as conn:
            _close_categories(conn, run_id, empty)
    except DBAPIError:
        log.warning("could not release the leases of run %s; they lapse on their own", run_id)
