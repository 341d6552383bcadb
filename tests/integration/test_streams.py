"""Streams cannot drift from the bucket: one position per (grant, destination, category), lost
history replayed in full, replays on request; on real PostgreSQL and SeaweedFS, each judged by a
consumer's rebuilt state against the platform's current state, record by record."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

from portability.categories import Category
from portability.crypto import CredentialBox
from portability.db.models import RunStatus
from portability.destinations.s3 import S3Destination
from portability.errors import ConflictError
from portability.platform.mutate import mutate
from portability.registry import add_destination
from portability.streams import list_streams, request_replay
from tests.fixtures.transfers import (
    Transfer,
    assert_consumer_exact,
    assert_exactly_once,
    consumed_state,
    decompress,
    manifests,
    run_to_end,
)

pytestmark = [pytest.mark.services]

ALL = [c.value for c in Category]
CATEGORIES = "posts,profile,activity,direct_messages"


@pytest.fixture
def transfer(pg_engine, make_transfer, s3_endpoint, make_bucket) -> Transfer:
    bucket = make_bucket(s3_endpoint)
    return make_transfer(
        pg_engine,
        S3Destination(s3_endpoint.config(bucket)),
        records=240,
        categories=CATEGORIES,
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )


def second_destination(transfer: Transfer, s3_endpoint, bucket: str) -> Transfer:
    """The same grant delivered to another bucket of the same app."""
    box = CredentialBox(transfer.runtime.settings.resolved_encryption_keys())
    with transfer.runtime.sessions.begin() as session:
        row = add_destination(
            session,
            box,
            app_id=transfer.app_id,
            bucket=bucket,
            endpoint_url=s3_endpoint.endpoint_url,
            access_key_id=s3_endpoint.access_key_id,
            secret_access_key=s3_endpoint.secret_access_key,
            prefix=transfer.prefix,
            name="second",
            endpoint_policy=transfer.runtime.settings.endpoint_policy,
        )
        destination_id = row.id
    destination = S3Destination(s3_endpoint.config(bucket))
    by_id = {transfer.destination_id: transfer.destination, destination_id: destination}
    runtime = dataclasses.replace(transfer.runtime, open_destination=lambda row: by_id[row.id])
    transfer.runtime = runtime
    return dataclasses.replace(
        transfer, runtime=runtime, destination=destination, destination_id=destination_id
    )


def wipe(destination: S3Destination) -> None:
    for info in list(destination.list_objects("")):
        destination.delete_object(info.key)


def replay_reasons(transfer: Transfer, run_id: int) -> dict[str, str | None]:
    with transfer.runtime.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT category, replay_reason FROM run_categories WHERE run_id = :r"),
            {"r": run_id},
        )
        return {category: reason for category, reason in rows}


def test_one_grant_delivered_to_two_destinations_in_turn_keeps_both_consumers_exact(
    transfer, s3_endpoint, make_bucket, pg_engine
):
    other = second_destination(transfer, s3_endpoint, make_bucket(s3_endpoint))
    for round_number in range(3):
        for target in (transfer, other):
            assert run_to_end(target, target.new_run()) == RunStatus.SUCCEEDED
            mutate(pg_engine, user_id=transfer.user_id, updates=6, deletes=2, seed=round_number)
    for target in (transfer, other):
        assert run_to_end(target, target.new_run()) == RunStatus.SUCCEEDED

    for target in (transfer, other):
        assert_exactly_once(target)
        assert_consumer_exact(target)
        assert [m.sequence for m in manifests(target.destination, target.stream("posts"))] == [
            1,
            2,
            3,
            4,
        ]


def test_a_new_destination_for_an_old_grant_starts_with_a_full_replay(
    transfer, s3_endpoint, make_bucket
):
    run_to_end(transfer, transfer.new_run())
    other = second_destination(transfer, s3_endpoint, make_bucket(s3_endpoint))

    run_id = other.new_run()
    assert run_to_end(other, run_id) == RunStatus.SUCCEEDED

    assert set(replay_reasons(other, run_id).values()) == {"first_delivery"}
    assert_consumer_exact(other)


def test_two_destinations_whose_objects_could_collide_are_refused(transfer, s3_endpoint):
    with pytest.raises(ConflictError, match="overlap"):
        second_destination(transfer, s3_endpoint, transfer.destination.config.bucket)


@pytest.mark.parametrize("new_changes", [True, False], ids=["with-changes", "nothing-new"])
def test_a_wiped_bucket_is_noticed_and_replayed_in_full(transfer, pg_engine, new_changes):
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=5, deletes=2, seed=1)
    run_to_end(transfer, transfer.new_run())
    wipe(transfer.destination)
    if new_changes:
        mutate(pg_engine, user_id=transfer.user_id, updates=4, deletes=1, seed=2)

    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED

    assert set(replay_reasons(transfer, run_id).values()) == {"lost_history"}
    assert_consumer_exact(transfer)
    for category in ALL:
        found = manifests(transfer.destination, transfer.stream(category))
        # numbering goes on past the lost manifests; a fresh consumer starts at the reset
        assert [(m.reset, m.replay_reason) for m in found] == [(True, "lost_history")]
        assert found[0].sequence > 1


def test_a_requested_replay_of_one_stream_resends_its_whole_state(transfer, pg_engine):
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=5, deletes=2, seed=3)
    run_to_end(transfer, transfer.new_run())
    with transfer.runtime.sessions.begin() as session:
        marked = request_replay(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            category="posts",
        )
    assert len(marked) == 1

    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED

    reasons = replay_reasons(transfer, run_id)
    assert reasons.get("posts") == "requested"
    assert all(reason is None for category, reason in reasons.items() if category != "posts")
    last = manifests(transfer.destination, transfer.stream("posts"))[-1]
    assert (last.reset, last.replay_reason) == (True, "requested")
    assert_exactly_once(transfer)
    assert_consumer_exact(transfer)


def test_a_requested_replay_of_a_whole_grant_resends_every_stream(transfer, pg_engine):
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=5, deletes=2, seed=4)
    with transfer.runtime.sessions.begin() as session:
        request_replay(session, app_id=None, authorization_id=transfer.authorization_id)

    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED

    assert set(replay_reasons(transfer, run_id).values()) == {"requested"}
    assert_consumer_exact(transfer)
    with transfer.runtime.sessions() as session:
        streams = list_streams(
            session, app_id=transfer.app_id, authorization_id=transfer.authorization_id
        )
    assert {(s.category, s.sequence, s.replay_pending) for s in streams} == {
        (c, 2, None) for c in ALL
    }


def test_another_apps_grant_cannot_be_replayed_or_listed(transfer):
    from portability.errors import NotFoundError

    with transfer.runtime.sessions.begin() as session, pytest.raises(NotFoundError):
        request_replay(
            session, app_id=transfer.app_id + 1000, authorization_id=transfer.authorization_id
        )


def everything_in(destination: S3Destination) -> dict[str, bytes]:
    """Every object of the bucket, parts decompressed."""
    found = {}
    for info in destination.list_objects(""):
        body = destination.get_object(info.key)
        found[info.key] = decompress(body, "gzip") if info.key.endswith(".gz") else body
    return found


def test_no_platform_user_id_appears_anywhere_in_the_bucket(
    pg_engine, make_transfer, s3_endpoint, make_bucket
):
    bucket = make_bucket(s3_endpoint)
    transfer = make_transfer(
        pg_engine,
        S3Destination(s3_endpoint.config(bucket)),
        records=150,
        users=5,  # messages and follows then name other users
        categories=CATEGORIES,
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=10, deletes=3, seed=6)
    run_to_end(transfer, transfer.new_run())
    with pg_engine.connect() as conn:
        user_ids = list(conn.execute(text("SELECT id FROM platform_users")).scalars())

    objects = everything_in(transfer.destination)

    assert len(user_ids) == 5 and len(objects) > 8
    leaks = [
        (key, user_id)
        for key, body in objects.items()
        for user_id in user_ids
        if user_id in key or user_id.encode() in body
    ]
    assert leaks == []
    messages = consumed_state(transfer.destination, transfer.stream("direct_messages"))
    peers = {m["peer_user_id"] for m in messages.values()}
    assert peers and all(p.startswith("p_") for p in peers)
    assert_consumer_exact(transfer)


def test_the_pseudonym_is_stable_for_one_app_and_differs_between_apps(transfer, pg_engine):
    from portability.pseudonyms import pseudonym
    from portability.registry import create_app, grant, set_app_status

    key = transfer.runtime.settings.resolved_pseudonym_key()
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=4, deletes=1, seed=8)
    run_to_end(transfer, transfer.new_run())
    with transfer.runtime.sessions.begin() as session:
        second_grant = grant(
            session,
            user_id=transfer.user_id,
            app_id=transfer.app_id,
            categories="posts",
            access="ongoing",
            eligible_countries={"DE"},
        ).id
        other_app, _key = create_app(
            session, name="Other", contact_email="o@example.com", use_case="x" * 40
        )
        set_app_status(session, other_app.id, "approved")
        other_app_id = other_app.id
    regranted = dataclasses.replace(transfer, authorization_id=second_grant)
    run_to_end(regranted, regranted.new_run(categories="posts"))

    users = {
        m.user
        for target in (transfer, regranted)
        for category in (["posts"] if target is regranted else ALL)
        for m in manifests(target.destination, target.stream(category))
    }
    assert users == {pseudonym(key, transfer.app_id, transfer.user_id)}
    assert pseudonym(key, other_app_id, transfer.user_id) not in users
