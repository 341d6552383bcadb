"""Executing one run: claim it, check tenancy and consent, deliver each stream, record it.

Plain Python, no Celery: the worker task calls ``execute_run`` and maps its ``RunOutcome`` to
"done" or "try again in N seconds" (``_outcome`` says how each way out maps to a status). A
failed run keeps its streams' positions: a re-run continues where it stopped.

A run's streams are delivered concurrently (each has its own lease, position and manifests);
``_stream`` delivers one, ``_guard`` keeps consent and the leases checked meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, select, update
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
    ConsentError,
    NotFoundError,
    PortabilityError,
    TenancyError,
)
from portability.export import _streams
from portability.export._guard import ConsentGuard, Heartbeat, RunRef
from portability.export._hooks import ExportHooks
from portability.export._outcome import RunOutcome, decisiveness, fail, outcome_of
from portability.export._plan import EMPTY, Planned, read_planned
from portability.export._stream import StreamJob, deliver_stream
from portability.logs import bound
from portability.manifest import stream_prefix
from portability.pseudonyms import Pseudonymizer
from portability.runs import claim_run, finish_run
from portability.runtime import Runtime
from portability.signing import load_signers

__all__ = ["RunOutcome", "execute_run"]

log = logging.getLogger("portability.export")


def execute_run(runtime: Runtime, run_id: int, *, hooks: ExportHooks | None = None) -> RunOutcome:
    """Run ``run_id`` to an outcome. Safe to call twice for the same run, concurrently or not:
    the second call finds the run claimed and is deferred (or dropped once it has ended)."""
    hooks = hooks or ExportHooks()
    with bound(run_id=run_id):  # every line of the run's steps names it (portability.logs)
        opened = _open(runtime, run_id)
        if isinstance(opened, RunOutcome):
            return opened
        with bound(
            app_id=opened.app.id,
            authorization_id=opened.grant.id,
            destination_id=opened.destination.id,
        ):
            return _run(runtime, run_id, opened, hooks)


def _run(runtime: Runtime, run_id: int, opened: _Opened, hooks: ExportHooks) -> RunOutcome:
    heartbeat = Heartbeat(runtime, run_id).start()
    empty: list[int] = []  # streams that found nothing new (appended from stream threads)
    try:
        if opened.refusal is not None:
            raise opened.refusal
        note = _export(runtime, opened, hooks, empty, heartbeat)
    except BaseException as exc:
        heartbeat.stop()
        _release(runtime, run_id, empty)
        if not isinstance(exc, Exception):
            raise  # a crash or an interrupt: the leases are free, the run's lease lapses
        return outcome_of(runtime, run_id, exc)
    heartbeat.stop()
    with runtime.sessions.begin() as session:
        _close_streams(session.connection(), run_id, empty)
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
    #: Retention's horizon when the run opened.
    horizon: int | None
    #: Why the run may not go on (consent), raised once the claim is committed.
    refusal: PortabilityError | None


def _open(runtime: Runtime, run_id: int) -> _Opened | RunOutcome:
    """Claim the run, load it with its grant, app, user and destination, check tenancy and
    consent and mark a single-use grant used: one transaction. A refusal is kept, not raised,
    so that the claim commits and the run can be closed with the reason."""
    settings = runtime.settings
    with runtime.sessions.begin() as session:
        if not claim_run(session, run_id, lease_seconds=settings.lease_seconds):
            return _not_claimed(session, run_id)
        failure: PortabilityError
        try:
            run, grant, app, user, destination = _load(session, run_id)
        except NotFoundError as missing:
            failure = missing  # committed with the claim, then recorded below
        else:
            if run.attempts > run.max_attempts:
                failure = PortabilityError(
                    f"the worker died or timed out {run.attempts - 1} times running this "
                    f"run (at most {run.max_attempts} attempts); its streams keep their "
                    "positions, so a re-run continues from there"
                )
            elif not (destination.app_id == grant.app_id == run.app_id):
                failure = TenancyError(
                    f"run {run.id} pairs authorization {grant.id} of app {grant.app_id} with "
                    f"destination {destination.id} of app {destination.app_id}: refused"
                )
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
                conn = session.connection()
                previous = read_planned(conn, run_id)
                horizon = _streams.horizon(conn)
                return _Opened(run, grant, app, user, destination, previous, horizon, refusal)
    return fail(runtime, run_id, failure)


def _not_claimed(session: Session, run_id: int) -> RunOutcome:
    """Why a message could not claim its run: ended (drop it), not due yet (drop it: the
    retry that set ``not_before`` carries its own message), or another worker's live lease
    (come back when it would lapse: if that worker died, this message takes the run over)."""
    row = session.execute(
        select(Run.status, Run.lease_expires_at).where(Run.id == run_id)
    ).one_or_none()
    if row is not None and row.status == RunStatus.RUNNING and row.lease_expires_at is not None:
        wait = max(1.0, (row.lease_expires_at - utcnow()).total_seconds() + 1.0)
        log.info("run %s is leased by another worker: checking again in %.0fs", run_id, wait)
        return RunOutcome(run_id, "deferred", retry_in=wait, message="leased by another worker")
    status = row.status if row is not None else "missing"
    log.info("run %s not claimable (%s): duplicate or early message dropped", run_id, status)
    return RunOutcome(run_id, "dropped", message=f"run is {status}")


def _export(
    runtime: Runtime,
    opened: _Opened,
    hooks: ExportHooks,
    empty: list[int],
    heartbeat: Heartbeat,
) -> str | None:
    settings = runtime.settings
    run, grant, user, dest_row = opened.run, opened.grant, opened.user, opened.destination
    allowed, refused = exportable_categories(grant.category_set, run.category_set)
    if not allowed:
        raise ConsentError(
            f"none of the requested categories ({', '.join(sorted(refused))}) is granted"
        )
    pseudonyms = Pseudonymizer(settings.resolved_pseudonym_key(), opened.app.id, user.id)
    signer = load_signers(settings)[0]
    destination = runtime.open_destination(dest_row)
    upper = runtime.source.position()  # outside any transaction of ours (SQLite locks)
    guard = ConsentGuard(runtime, RunRef(run.id, grant.id, run.rerun_of), heartbeat)
    started_at: datetime = run.started_at or utcnow()
    categories = sorted(c.value for c in allowed)

    def deliver(category: Category) -> None:
        job = StreamJob(
            run_id=run.id,
            app_id=opened.app.id,
            authorization_id=grant.id,
            destination_id=dest_row.id,
            user_id=user.id,
            user=pseudonyms.owner_pseudonym,
            category=category,
            categories=categories,
            folder=stream_prefix(
                dest_row.prefix, pseudonyms.owner_pseudonym, category.value, grant.id
            ),
            compression=dest_row.compression or settings.export_compression,
            started_at=started_at,
            upper=upper,
            horizon=opened.horizon,
            rewrite=partial(pseudonyms.rewrite, category.value),
            signer=signer,
            previous=opened.previous.get(category.value),
        )
        ids = {"app_id": job.app_id, "authorization_id": grant.id, "destination_id": dest_row.id}
        with bound(run_id=run.id, category=category.value, **ids):  # a thread's own context
            status, stream_id = deliver_stream(runtime, job, destination, guard, hooks)
        if status == EMPTY and stream_id is not None:
            empty.append(stream_id)

    _each_category(sorted(allowed), deliver, settings.export_category_concurrency)
    if refused:
        return f"not granted, skipped: {', '.join(sorted(refused))}"
    return None


def _each_category(
    categories: list[Category], deliver: Callable[[Category], None], concurrency: int
) -> None:
    """Deliver the streams, several at once when allowed.

    Their database and S3 round trips overlap, so an incremental run's latency becomes that of
    its slowest stream rather than the sum. When several fail, the most decisive error is
    raised: consent first (the run is cancelled), then a lost run, then permanent, then
    transient failures.
    """
    if concurrency <= 1 or len(categories) <= 1:
        for category in categories:
            deliver(category)
        return
    failures: list[BaseException] = []
    workers = min(concurrency, len(categories))
    with ThreadPoolExecutor(workers, thread_name_prefix="portability-stream") as pool:
        for future in [pool.submit(deliver, category) for category in categories]:
            try:
                future.result()
            except BaseException as exc:  # collected; the decisive one is re-raised below
                failures.append(exc)
    if failures:
        raise min(failures, key=decisiveness)


def _load(
    session: Session, run_id: int
) -> tuple[Run, Authorization, App, PlatformUser, Destination]:
    """The run with its grant, app, user and destination, in one query."""
    row = session.execute(
        select(Run, Authorization, App, PlatformUser, Destination)
        .join(Authorization, Authorization.id == Run.authorization_id)
        .join(App, App.id == Authorization.app_id)
        .join(Destination, Destination.id == Run.destination_id)
        .join(PlatformUser, PlatformUser.id == Authorization.user_id)
        .where(Run.id == run_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"run {run_id} refers to a missing grant, app, destination or user")
    return row.Run, row.Authorization, row.App, row.PlatformUser, row.Destination


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


def _close_streams(conn: Connection, run_id: int, empty: list[int]) -> None:
    """Free the run's stream leases as it succeeds: every stream still only planned found
    nothing new, so it is recorded ``empty`` and its planned delivery withdrawn."""
    _streams.release_leases(conn, run_id, empty=empty)
    conn.execute(
        update(RunCategory)
        .where(RunCategory.run_id == run_id, RunCategory.status == "planned")
        .values(status=EMPTY)
    )


def _release(runtime: Runtime, run_id: int, empty: list[int]) -> None:
    try:
        with runtime.engine.begin() as conn:
            _streams.release_leases(conn, run_id, empty=empty)
    except DBAPIError:
        log.warning("could not release the leases of run %s; they lapse on their own", run_id)
