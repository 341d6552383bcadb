"""Promise 8: a developer sees and touches only their own app's destinations, schedules and runs."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import AppStatus
from portability.errors import NotFoundError
from portability.registry import (
    add_destination,
    add_user,
    create_app,
    create_schedule,
    grant,
    set_app_status,
)
from portability.runs import create_run, get_run

EEA = frozenset({"DE"})


@pytest.fixture
def two_apps(sqlite_url):
    engine = make_engine(sqlite_url)
    sessions = make_session_factory(engine)
    box = CredentialBox(Fernet.generate_key())
    with sessions.begin() as session:
        add_user(session, user_id="u1", country="DE")
        ids = {}
        for name in ("ours", "theirs"):
            app, _ = create_app(
                session,
                name=name,
                contact_email=f"{name}@x.io",
                use_case="Imports the user's posts into the editor.",
            )
            set_app_status(session, app.id, AppStatus.APPROVED)
            auth = grant(
                session,
                user_id="u1",
                app_id=app.id,
                categories="posts",
                access="ongoing",
                eligible_countries=EEA,
            )
            dest = add_destination(
                session,
                box,
                app_id=app.id,
                bucket=f"{name}-bucket",
                access_key_id="k",
                secret_access_key="s",
            )
            ids[name] = (app.id, auth.id, dest.id)
    yield sessions, ids
    engine.dispose()


def test_a_schedule_cannot_use_another_apps_destination(two_apps):
    sessions, ids = two_apps
    with sessions.begin() as session, pytest.raises(NotFoundError, match="destination"):
        create_schedule(
            session,
            app_id=ids["ours"][0],
            authorization_id=ids["ours"][1],
            destination_id=ids["theirs"][2],
            categories="posts",
        )


def test_a_schedule_cannot_use_another_apps_grant(two_apps):
    sessions, ids = two_apps
    with sessions.begin() as session, pytest.raises(NotFoundError, match="authorization"):
        create_schedule(
            session,
            app_id=ids["ours"][0],
            authorization_id=ids["theirs"][1],
            destination_id=ids["ours"][2],
            categories="posts",
        )


def test_a_run_cannot_send_one_apps_grant_to_another_apps_destination(two_apps):
    sessions, ids = two_apps
    with sessions.begin() as session, pytest.raises(NotFoundError, match="destination"):
        create_run(
            session,
            app_id=None,
            authorization_id=ids["ours"][1],
            destination_id=ids["theirs"][2],
            categories="posts",
        )


def test_another_apps_run_is_not_found(two_apps):
    sessions, ids = two_apps
    with sessions.begin() as session:
        run_id = create_run(
            session,
            app_id=None,
            authorization_id=ids["theirs"][1],
            destination_id=ids["theirs"][2],
            categories="posts",
        ).id
    with sessions() as session:
        assert get_run(session, run_id, app_id=ids["theirs"][0]).id == run_id
        with pytest.raises(NotFoundError):
            get_run(session, run_id, app_id=ids["ours"][0])


def _mixed_schedule(sessions, ids) -> int:
    """A schedule row written around the registry: our grant, their destination."""
    from sqlalchemy import update

    from portability.db.base import utcnow
    from portability.db.models import Schedule

    with sessions.begin() as session:
        schedule = create_schedule(
            session,
            app_id=ids["ours"][0],
            authorization_id=ids["ours"][1],
            destination_id=ids["ours"][2],
            categories="posts",
        )
        session.execute(
            update(Schedule)
            .where(Schedule.id == schedule.id)
            .values(destination_id=ids["theirs"][2], next_run_at=utcnow())
        )
        return schedule.id


def test_the_tick_disables_a_schedule_that_pairs_one_apps_grant_with_anothers_destination(
    two_apps,
):
    from portability.db.base import utcnow
    from portability.db.models import Run, Schedule
    from schedules.claim import claim_due_schedules
    from schedules.decide import Action, decide

    sessions, ids = two_apps
    schedule_id = _mixed_schedule(sessions, ids)

    with sessions.begin() as session:
        (due,) = claim_due_schedules(session, utcnow(), 10)
        decision = decide(due, utcnow(), max_jitter_seconds=0)

    assert due.id == schedule_id
    assert decision.action == Action.DISABLE
    assert "pairs authorization" in (decision.reason or "")
    with sessions() as session:
        assert session.query(Run).count() == 0
        assert session.get(Schedule, schedule_id) is not None


def test_the_engine_refuses_a_run_row_that_pairs_one_apps_grant_with_anothers_destination(
    two_apps, sqlite_url, tmp_path
):
    from sqlalchemy import update

    from portability.db.models import Run
    from portability.destinations.memory import MemoryDestination
    from portability.export import execute_run
    from portability.runtime import Runtime
    from portability.settings import Settings
    from portability.sources.sql import SqlChangeFeed

    sessions, ids = two_apps
    with sessions.begin() as session:
        run_id = create_run(
            session,
            app_id=None,
            authorization_id=ids["ours"][1],
            destination_id=ids["ours"][2],
            categories="posts",
        ).id
        session.execute(update(Run).where(Run.id == run_id).values(destination_id=ids["theirs"][2]))
    bucket = MemoryDestination()
    engine = make_engine(sqlite_url)
    settings = Settings(data_dir=tmp_path, database_url=sqlite_url)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        box=CredentialBox(Fernet.generate_key()),
        source=SqlChangeFeed(engine),
        open_destination=lambda _row: bucket,
    )

    outcome = execute_run(runtime, run_id)

    assert (outcome.status, bucket.objects) == ("failed", {})
    assert "pairs authorization" in (outcome.message or "")
    engine.dispose()
