"""The dispatcher on the embedded SQLite: it fans events out, re-publishes what the broker
lost, and the standalone scheduler loop runs it; a duplicate message backs off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from portability import registry, webhooks
from portability.db.base import utcnow
from portability.db.models import AppStatus
from portability.events.dispatch import dispatch_events
from portability.events.send import attempt_delivery
from portability.runtime import Runtime
from portability.settings import Settings
from schedules.loop import SchedulerLoop
from tests.fixtures.workers import TEST_PSEUDONYM_KEY


@pytest.fixture
def runtime(sqlite_url, tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=SecretStr(sqlite_url),
        encryption_key=SecretStr(Fernet.generate_key().decode()),
        pseudonym_key=SecretStr(TEST_PSEUDONYM_KEY),
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )
    runtime = Runtime.from_settings(settings)
    yield runtime
    runtime.close()


def hooked_app(runtime, url: str) -> int:
    """An approved app with one endpoint, then a grant: one event to deliver."""
    with runtime.sessions.begin() as session:
        app, _ = registry.create_app(
            session, name="Acme", contact_email="dev@acme.test", use_case="backs up user data"
        )
        registry.set_app_status(session, app.id, AppStatus.APPROVED)
        webhooks.create_endpoint(
            session, runtime.box, app_id=app.id, url=url, policy=runtime.settings.endpoint_policy
        )
        registry.add_user(session, user_id="u1", country="DE")
        registry.grant(
            session,
            user_id="u1",
            app_id=app.id,
            categories="posts",
            access="ongoing",
            eligible_countries={"DE"},
        )
        return app.id


def test_a_delivery_whose_message_was_lost_is_published_again_after_the_resend_delay(runtime):
    hooked_app(runtime, "http://127.0.0.1:9/hooks")
    lost: list[int] = []
    dispatch_events(runtime.settings, runtime.sessions, lost.extend)  # the broker drops it
    soon: list[int] = []
    dispatch_events(runtime.settings, runtime.sessions, soon.extend)
    later: list[int] = []
    resend_after = timedelta(seconds=runtime.settings.webhook_resend_after_seconds + 1)
    dispatch_events(runtime.settings, runtime.sessions, later.extend, now=utcnow() + resend_after)

    assert (len(lost), soon, later) == (1, [], lost)


def test_the_standalone_scheduler_loop_dispatches_events(runtime):
    hooked_app(runtime, "http://127.0.0.1:9/hooks")
    published: list[int] = []
    loop = SchedulerLoop(
        runtime,
        lambda _runs: None,
        tick_seconds=0.01,
        on_tick=lambda _result: loop.stop(),
        enqueue_deliveries=published.extend,
    )

    loop.run()

    assert (len(published), loop.failures) == (1, 0)


def test_a_duplicate_message_for_a_delivered_event_is_dropped(runtime, receiver):
    hooked_app(runtime, receiver.url)
    published: list[int] = []
    dispatch_events(runtime.settings, runtime.sessions, published.extend)
    (delivery_id,) = published

    first = attempt_delivery(runtime, delivery_id)
    again = attempt_delivery(runtime, delivery_id)

    assert (first.status, again.status, len(receiver.requests)) == ("succeeded", "dropped", 1)


def test_retention_deletes_old_delivered_events_and_keeps_what_is_still_owed(runtime, receiver):
    from portability.events.retention import purge_events

    hooked_app(runtime, receiver.url)
    published: list[int] = []
    dispatch_events(runtime.settings, runtime.sessions, published.extend)
    (delivered,) = published
    attempt_delivery(runtime, delivered)
    with runtime.sessions.begin() as session:  # a second event, owed to the endpoint
        registry.revoke_grant(session, 1)
    dispatch_events(runtime.settings, runtime.sessions, published.extend)
    later = utcnow() + timedelta(days=31)

    removed = purge_events(runtime.engine, retention_days=30, now=later)

    with runtime.sessions() as session:
        left = [e.type for e in webhooks.list_events(session, 1, b"k" * 32, limit=10)]
    assert (removed, left) == (1, ["authorization.removed"])
