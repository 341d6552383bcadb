"""Events produced by the real actions that cause them, delivered to a real HTTP receiver on
loopback, every signature verified with the ``standardwebhooks`` package.

The export runs in-process (``execute_run``) and the deliveries are attempted in-process as a
worker would (``dispatch_events`` then ``attempt_delivery``); ``test_event_workers.py`` does the
same through real Celery processes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from portability import registry, webhooks
from portability.db.base import utcnow
from portability.db.models import Access, AppStatus, Event, RunStatus, Schedule
from portability.destinations.memory import MemoryDestination
from portability.errors import DestinationPermanentError
from portability.events.dispatch import dispatch_events
from portability.events.send import attempt_delivery
from portability.platform.mutate import mutate
from portability.review import review_app
from portability.sources.retention import apply_retention
from portability.streams import request_replay
from schedules import run_tick
from tests.fixtures.transfers import run_to_end

pytestmark = pytest.mark.services


def deliver_all(runtime) -> list[int]:
    """Fan out every new event and attempt each delivery once, in-process."""
    sent: list[int] = []
    dispatch_events(runtime.settings, runtime.sessions, sent.extend)
    for delivery_id in sent:
        attempt_delivery(runtime, delivery_id)
    return sent


def hook(transfer, receiver) -> str:
    """Register the receiver as the transfer's app's endpoint; its secret."""
    runtime = transfer.runtime
    with runtime.sessions.begin() as session:
        _, secret = webhooks.create_endpoint(
            session,
            runtime.box,
            app_id=transfer.app_id,
            url=receiver.url,
            policy=runtime.settings.endpoint_policy,
        )
    deliver_all(runtime)  # authorization.created of the setup
    return secret


@pytest.fixture
def hooked(pg_engine, make_transfer, receiver):
    """A transfer whose app has an endpoint on the receiver: (transfer, secret)."""
    transfer = make_transfer(pg_engine, MemoryDestination(), records=40)
    return transfer, hook(transfer, receiver)


def test_a_successful_run_sends_run_succeeded_with_its_categories_and_the_pseudonym(
    hooked, receiver
):
    transfer, secret = hooked
    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED
    deliver_all(transfer.runtime)

    (payload,) = receiver.of_type("run.succeeded", secret)
    data = payload["data"]
    assert (data["run_id"], data["status"], data["user"]) == (
        run_id,
        "succeeded",
        transfer.pseudonym,
    )
    assert data["authorization_id"] == transfer.authorization_id
    assert set(data["categories"]) == {"activity", "direct_messages", "posts", "profile"}
    assert all(c["manifest_key"] for c in data["categories"].values())
    assert data["records"] == sum(c["records"] for c in data["categories"].values()) > 0
    assert transfer.user_id not in str(receiver.requests[-1].body)


def test_a_first_delivery_sends_stream_replayed_per_category_with_its_reason(hooked, receiver):
    transfer, secret = hooked
    run_to_end(transfer, transfer.new_run())
    deliver_all(transfer.runtime)

    replays = receiver.of_type("stream.replayed", secret)
    assert sorted((p["data"]["category"], p["data"]["reason"]) for p in replays) == [
        ("activity", "first_delivery"),
        ("direct_messages", "first_delivery"),
        ("posts", "first_delivery"),
        ("profile", "first_delivery"),
    ]


def test_a_requested_replay_sends_stream_replayed_requested(hooked, receiver):
    transfer, secret = hooked
    run_to_end(transfer, transfer.new_run())
    with transfer.runtime.sessions.begin() as session:
        request_replay(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            category="posts",
        )
    run_to_end(transfer, transfer.new_run())
    deliver_all(transfer.runtime)

    reasons = [p["data"]["reason"] for p in receiver.of_type("stream.replayed", secret)]
    assert reasons.count("requested") == 1


def test_a_permanent_failure_sends_run_failed_and_destination_failing_after_n_runs(
    pg_engine, make_transfer, receiver, test_settings
):
    settings = test_settings.model_copy(update={"events_destination_failing_after": 2})
    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=20, settings=settings)
    with transfer.runtime.sessions.begin() as session:
        _, secret = webhooks.create_endpoint(
            session,
            transfer.runtime.box,
            app_id=transfer.app_id,
            url=receiver.url,
            policy=settings.endpoint_policy,
        )
    for _ in range(3):
        destination.fail_next(1, DestinationPermanentError("access denied to bucket x"))
        assert run_to_end(transfer, transfer.new_run()) == RunStatus.FAILED
    deliver_all(transfer.runtime)

    failed = receiver.of_type("run.failed", secret)
    assert [p["data"]["failure_reason"] for p in failed] == ["destination_permanent"] * 3
    (failing,) = receiver.of_type("destination.failing", secret)
    assert failing["data"]["consecutive_failures"] == 2
    assert "access denied" in failing["data"]["message"]


def test_revoking_a_grant_sends_authorization_removed_and_schedule_disabled(hooked, receiver):
    transfer, secret = hooked
    with transfer.runtime.sessions.begin() as session:
        registry.create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts",
            cron="0 * * * *",
        )
    with transfer.runtime.sessions.begin() as session:
        registry.revoke_grant(session, transfer.authorization_id, reason="changed my mind")
    with transfer.runtime.sessions.begin() as session:  # a second revocation is no new event
        registry.revoke_grant(session, transfer.authorization_id)
    deliver_all(transfer.runtime)

    (removed,) = receiver.of_type("authorization.removed", secret)
    assert removed["data"]["reason"] == "user_revoked"
    assert removed["data"]["user"] == transfer.pseudonym
    (disabled,) = receiver.of_type("schedule.disabled", secret)
    assert disabled["data"]["reason"] == "authorization_revoked"


def test_a_grant_sends_authorization_created(hooked, receiver):
    transfer, secret = hooked
    (created,) = receiver.of_type("authorization.created", secret)
    assert created["data"]["authorization_id"] == transfer.authorization_id
    assert created["data"]["user"] == transfer.pseudonym


def test_a_run_cancelled_for_an_expired_grant_sends_run_cancelled_and_removed_expired(
    hooked, receiver
):
    transfer, secret = hooked
    run_id = transfer.new_run()
    with transfer.runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE authorizations SET expires_at = :t WHERE id = :id"),
            {"t": utcnow() - timedelta(seconds=1), "id": transfer.authorization_id},
        )
    assert run_to_end(transfer, run_id) == RunStatus.CANCELLED
    transfer_again = transfer.new_run()
    assert run_to_end(transfer, transfer_again) == RunStatus.CANCELLED
    deliver_all(transfer.runtime)

    assert len(receiver.of_type("run.cancelled", secret)) == 2
    (removed,) = receiver.of_type("authorization.removed", secret)  # once per grant and reason
    assert removed["data"]["reason"] == "expired"


def test_a_single_use_grant_spent_by_its_run_sends_authorization_removed(
    pg_engine, make_transfer, receiver
):
    transfer = make_transfer(pg_engine, MemoryDestination(), records=10, access=Access.SINGLE)
    with transfer.runtime.sessions.begin() as session:
        _, secret = webhooks.create_endpoint(
            session,
            transfer.runtime.box,
            app_id=transfer.app_id,
            url=receiver.url,
            policy=transfer.runtime.settings.endpoint_policy,
        )
    assert run_to_end(transfer, transfer.new_run()) == RunStatus.SUCCEEDED
    deliver_all(transfer.runtime)

    (removed,) = receiver.of_type("authorization.removed", secret)
    assert removed["data"]["reason"] == "single_use_spent"


def test_the_scheduler_disabling_a_schedule_of_an_expired_grant_sends_both_events(hooked, receiver):
    transfer, secret = hooked
    runtime = transfer.runtime
    with runtime.sessions.begin() as session:
        schedule = registry.create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts",
            cron="0 * * * *",
        )
        schedule_id = schedule.id
    later = utcnow() + timedelta(days=1)
    with runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE authorizations SET expires_at = :t WHERE id = :id"),
            {"t": later - timedelta(hours=1), "id": transfer.authorization_id},
        )
    run_tick(runtime, lambda ids: None, now=later)
    deliver_all(runtime)

    (disabled,) = receiver.of_type("schedule.disabled", secret)
    assert (disabled["data"]["schedule_id"], disabled["data"]["reason"]) == (
        schedule_id,
        "authorization_expired",
    )
    assert [p["data"]["reason"] for p in receiver.of_type("authorization.removed", secret)] == [
        "expired"
    ]


def test_an_event_is_not_recorded_when_its_state_change_rolls_back(hooked):
    transfer, _ = hooked
    sessions = transfer.runtime.sessions
    with sessions() as session:
        registry.revoke_grant(session, transfer.authorization_id)
        session.rollback()
    with sessions() as session:
        removed = session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "authorization.removed")
        )
        schedules = session.scalar(select(func.count()).select_from(Schedule))
    assert (removed, schedules) == (0, 0)


def schedule_for(transfer) -> int:
    with transfer.runtime.sessions.begin() as session:
        return registry.create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts",
            cron="0 * * * *",
        ).id


def review(transfer, decision: AppStatus) -> None:
    """What ``portability apps suspend|approve`` does, in its one transaction."""
    with transfer.runtime.sessions.begin() as session:
        review_app(session, transfer.app_id, decision, actor="staff@test", note="abuse report 17")


def another_grant(transfer, user_id: str, *, revoked: bool = False) -> int:
    with transfer.runtime.sessions.begin() as session:
        registry.add_user(session, user_id=user_id, country="DE")
        grant = registry.grant(
            session,
            user_id=user_id,
            app_id=transfer.app_id,
            categories="posts",
            access="ongoing",
            eligible_countries={"DE"},
        )
        if revoked:
            registry.revoke_grant(session, grant.id)
        return grant.id


def test_suspending_an_app_tells_at_once_of_each_live_grant_removed_and_schedule_disabled(
    hooked, receiver
):
    transfer, secret = hooked
    schedule_id = schedule_for(transfer)
    second = another_grant(transfer, "u-second")
    revoked = another_grant(transfer, "u-revoked", revoked=True)

    review(transfer, AppStatus.SUSPENDED)
    deliver_all(transfer.runtime)  # no run, no tick: only what the suspension recorded

    removed = receiver.of_type("authorization.removed", secret)
    by_reason = sorted((p["data"]["reason"], p["data"]["authorization_id"]) for p in removed)
    assert by_reason == sorted(
        [
            ("app_suspended", transfer.authorization_id),
            ("app_suspended", second),
            ("user_revoked", revoked),  # at its revocation; it was no longer live
        ]
    )
    (disabled,) = receiver.of_type("schedule.disabled", secret)
    assert (disabled["data"]["schedule_id"], disabled["data"]["reason"]) == (
        schedule_id,
        "app_suspended",
    )


def test_a_run_and_a_tick_meeting_the_suspension_later_send_nothing_twice(hooked, receiver):
    transfer, secret = hooked
    schedule_for(transfer)
    run_id = transfer.new_run()

    review(transfer, AppStatus.SUSPENDED)
    assert run_to_end(transfer, run_id) == RunStatus.CANCELLED
    run_tick(transfer.runtime, lambda ids: None, now=utcnow() + timedelta(days=1))
    deliver_all(transfer.runtime)

    (cancelled,) = receiver.of_type("run.cancelled", secret)
    assert cancelled["data"]["run_id"] == run_id
    assert [p["data"]["reason"] for p in receiver.of_type("authorization.removed", secret)] == [
        "app_suspended"
    ]
    assert len(receiver.of_type("schedule.disabled", secret)) == 1


def test_an_app_suspended_again_after_approval_tells_its_developer_again(hooked, receiver):
    transfer, secret = hooked

    review(transfer, AppStatus.SUSPENDED)
    review(transfer, AppStatus.APPROVED)
    review(transfer, AppStatus.SUSPENDED)
    deliver_all(transfer.runtime)

    removed = receiver.of_type("authorization.removed", secret)
    assert [p["data"]["reason"] for p in removed] == ["app_suspended"] * 2


def test_a_lost_history_replay_sends_stream_replayed_lost_history(hooked, receiver):
    transfer, secret = hooked
    run_to_end(transfer, transfer.new_run())
    for info in list(transfer.destination.list_objects("")):  # the developer's bucket wiped
        transfer.destination.delete_object(info.key)

    run_to_end(transfer, transfer.new_run())
    deliver_all(transfer.runtime)

    reasons = [p["data"]["reason"] for p in receiver.of_type("stream.replayed", secret)]
    assert sorted(set(reasons)) == ["first_delivery", "lost_history"]
    assert reasons.count("lost_history") == 4  # one per category


def test_a_stream_behind_the_feed_retention_sends_stream_replayed_behind_retention(
    sqlite_engine, make_transfer, receiver
):
    # The embedded database: on a shared PostgreSQL server another database's open
    # transaction would hold the retention horizon back.
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=40)
    secret = hook(transfer, receiver)
    run_to_end(transfer, transfer.new_run())
    mutate(sqlite_engine, user_id=transfer.user_id, updates=4, deletes=1, seed=3)
    start = utcnow()
    apply_retention(sqlite_engine, retention_days=30, now=start)  # marks above the new changes
    apply_retention(sqlite_engine, retention_days=30, now=start + timedelta(days=31))

    run_to_end(transfer, transfer.new_run())
    deliver_all(transfer.runtime)

    reasons = [p["data"]["reason"] for p in receiver.of_type("stream.replayed", secret)]
    assert reasons.count("behind_retention") == 4, reasons  # one per category


def test_a_run_for_a_user_no_longer_eligible_sends_authorization_removed_user_not_eligible(
    hooked, receiver
):
    transfer, secret = hooked
    with transfer.runtime.sessions.begin() as session:  # the platform says they moved away
        registry.upsert_user(session, user_id=transfer.user_id, country="US")

    assert run_to_end(transfer, transfer.new_run()) == RunStatus.CANCELLED
    deliver_all(transfer.runtime)

    (removed,) = receiver.of_type("authorization.removed", secret)
    assert (removed["data"]["reason"], removed["data"]["user"]) == (
        "user_not_eligible",
        transfer.pseudonym,
    )


def test_a_user_deleting_their_account_sends_authorization_removed_user_deleted_once(
    hooked, receiver
):
    transfer, secret = hooked
    run_id = transfer.new_run()  # queued before the deletion
    with transfer.runtime.sessions.begin() as session:  # the platform says they left
        registry.delete_user(session, user_id=transfer.user_id)

    assert run_to_end(transfer, run_id) == RunStatus.CANCELLED
    deliver_all(transfer.runtime)

    (removed,) = receiver.of_type("authorization.removed", secret)
    assert (removed["data"]["reason"], removed["data"]["user"]) == (
        "user_deleted",
        transfer.pseudonym,
    )
