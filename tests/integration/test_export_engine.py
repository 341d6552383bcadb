"""The export engine on real PostgreSQL: effectively once, nothing skipped, consent is law."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from portability.categories import Category
from portability.db.base import utcnow
from portability.db.models import RunStatus
from portability.destinations.memory import MemoryDestination
from portability.errors import DestinationPermanentError, DestinationTransientError
from portability.export import ExportHooks, execute_run
from portability.platform.mutate import mutate
from portability.registry import revoke_grant, set_app_status
from tests.fixtures.transfers import (
    assert_consumer_exact,
    assert_exactly_once,
    current_lines,
    decompress,
    manifests,
    run_to_end,
)

pytestmark = pytest.mark.services

ALL = [c.value for c in Category]


class SimulatedCrash(BaseException):
    """A process dying mid-step: not an Exception, so nothing in the engine handles it."""


def expire_lease(transfer, run_id: int) -> None:
    """What time does to a dead worker's lease."""
    with transfer.runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET lease_expires_at = :t WHERE id = :id"),
            {"t": utcnow().replace(year=2000), "id": run_id},
        )
        conn.execute(
            text("UPDATE streams SET lease_expires_at = :t WHERE lease_run_id = :id"),
            {"t": utcnow().replace(year=2000), "id": run_id},
        )


def test_first_run_delivers_every_change_of_every_granted_category(pg_engine, make_transfer):
    transfer = make_transfer(pg_engine, MemoryDestination(), records=300)
    run_id = transfer.new_run()

    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED
    assert_exactly_once(transfer)
    assert_consumer_exact(transfer)
    run = transfer.run(run_id)
    assert run.records == sum(len(current_lines(pg_engine, transfer.user_id, c)) for c in ALL)
    assert run.bytes > 0


def test_incremental_run_carries_only_the_changes_since_the_position(pg_engine, make_transfer):
    transfer = make_transfer(pg_engine, MemoryDestination(), records=300)
    run_to_end(transfer, transfer.new_run())
    report = mutate(pg_engine, user_id=transfer.user_id, updates=7, deletes=3, seed=5)

    second = transfer.new_run()
    assert run_to_end(transfer, second) == RunStatus.SUCCEEDED

    assert transfer.run(second).records == 10
    assert_exactly_once(transfer)
    assert_consumer_exact(transfer)
    assert report is not None


def test_deleted_records_travel_as_tombstones(pg_engine, make_transfer):
    transfer = make_transfer(pg_engine, MemoryDestination(), records=100, categories="posts")
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=0, deletes=2, seed=3, categories=["posts"])
    run_to_end(transfer, transfer.new_run())

    last = manifests(transfer.destination, transfer.stream("posts"))[-1]
    import orjson

    lines = [
        orjson.loads(line)
        for part in last.parts
        for line in decompress(transfer.destination.get_object(part.key), "gzip").splitlines()
    ]
    assert [(r["op"], r["data"]) for r in lines] == [("delete", None), ("delete", None)]
    assert last.parts[0].deletes == 2


def test_a_run_with_nothing_new_writes_no_manifest_and_keeps_the_position(pg_engine, make_transfer):
    transfer = make_transfer(pg_engine, MemoryDestination(), records=50, categories="posts")
    run_to_end(transfer, transfer.new_run())
    before = dict(transfer.destination.objects)

    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED

    assert transfer.destination.objects == before
    assert transfer.run(run_id).records == 0


@pytest.mark.parametrize("step", ["after_part", "after_manifest", "before_checkpoint_commit"])
def test_crash_at_any_step_then_rerun_delivers_each_change_exactly_once(
    pg_engine, make_transfer, test_settings, step
):
    settings = test_settings.model_copy(
        update={"export_part_max_records": 40, "export_batch_size": 15}
    )
    transfer = make_transfer(pg_engine, MemoryDestination(), records=400, settings=settings)
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=60, deletes=10, seed=9)
    run_id = transfer.new_run()
    crashes = {"left": 1}

    def crash(_key: str) -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise SimulatedCrash(step)

    with pytest.raises(SimulatedCrash):
        execute_run(transfer.runtime, run_id, hooks=ExportHooks(**{step: crash}))
    expire_lease(transfer, run_id)

    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED
    assert_exactly_once(transfer)
    mutate(pg_engine, user_id=transfer.user_id, updates=5, deletes=1, seed=10)
    run_to_end(transfer, transfer.new_run())
    assert_exactly_once(transfer)
    assert_consumer_exact(transfer)


def test_a_duplicate_message_for_a_running_run_comes_back_when_its_lease_would_lapse(
    pg_engine, make_transfer, test_settings
):
    transfer = make_transfer(pg_engine, MemoryDestination(), records=50)
    run_id = transfer.new_run()
    seen = []
    lock = threading.Lock()

    def duplicate(_category: str) -> None:
        with lock:
            if not seen:
                seen.append(execute_run(transfer.runtime, run_id))

    execute_run(transfer.runtime, run_id, hooks=ExportHooks(between_batches=duplicate))

    assert [o.status for o in seen] == ["deferred"]
    assert 0 < (seen[0].retry_in or 0) <= test_settings.lease_seconds + 1
    assert transfer.run(run_id).attempts == 1  # the duplicate used up no attempt
    assert execute_run(transfer.runtime, run_id).status == "dropped"  # once the run has ended
    assert transfer.run(run_id).status == RunStatus.SUCCEEDED
    assert_exactly_once(transfer)


def test_two_runs_of_one_grant_never_export_a_category_concurrently(
    pg_engine, make_transfer, test_settings
):
    settings = test_settings.model_copy(update={"export_batch_size": 20})
    transfer = make_transfer(pg_engine, MemoryDestination(), records=600, settings=settings)
    first, second = transfer.new_run(), transfer.new_run()
    active: dict[str, set[int]] = {c: set() for c in ALL}
    overlaps: list[str] = []
    lock = threading.Lock()

    def watch(run_id):
        def between(category: str) -> None:
            with lock:
                active[category].add(run_id)
                if len(active[category]) > 1:
                    overlaps.append(category)

        return between

    def done_category(run_id):
        def after(key: str) -> None:
            with lock:
                for category in ALL:
                    if f"/{category}/" in key:
                        active[category].discard(run_id)

        return after

    def go(run_id):
        hooks = ExportHooks(between_batches=watch(run_id), after_manifest=done_category(run_id))
        run_to_end(transfer, run_id, hooks=hooks)

    threads = [threading.Thread(target=go, args=(r,)) for r in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert overlaps == []
    assert {transfer.run(first).status, transfer.run(second).status} == {RunStatus.SUCCEEDED}
    assert_exactly_once(transfer)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_revocation_mid_run_cancels_it_and_writes_nothing_more(
    pg_engine, make_transfer, test_settings, concurrency
):
    settings = test_settings.model_copy(
        update={
            "export_batch_size": 10,
            "export_part_max_records": 10,
            "export_category_concurrency": concurrency,
        }
    )
    destination = MemoryDestination()
    transfer = make_transfer(
        pg_engine, destination, records=300, categories="posts,activity", settings=settings
    )
    run_id = transfer.new_run()
    lock = threading.Lock()
    state = {"batches": 0, "objects_at_revoke": None}

    def revoke_on_third_batch(_category: str) -> None:
        with lock:
            state["batches"] += 1
            if state["batches"] != 3:
                return
            with transfer.runtime.sessions.begin() as session:
                revoke_grant(session, transfer.authorization_id, reason="user withdrew consent")
            state["objects_at_revoke"] = set(destination.objects)

    outcome = execute_run(
        transfer.runtime, run_id, hooks=ExportHooks(between_batches=revoke_on_third_batch)
    )

    run = transfer.run(run_id)
    assert (outcome.status, run.status, run.failure_reason) == ("cancelled", "cancelled", "consent")
    assert "revoked" in run.last_error and "user withdrew consent" in run.last_error
    assert state["objects_at_revoke"], "parts were written before the revocation"
    # Consent is re-read before every object write, and a stream stopped for consent deletes
    # the parts no manifest lists: nothing of the revoked grant's first delivery remains.
    assert destination.objects == {}


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("expired", "expired"),
        ("not_approved", "suspended, not approved"),
        ("non_eea", "outside the eligible countries"),
    ],
)
def test_a_grant_that_no_longer_holds_cancels_the_run_before_anything_is_written(
    pg_engine, make_transfer, setup, expected
):
    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=50)
    run_id = transfer.new_run()
    with pg_engine.begin() as conn:
        if setup == "expired":
            conn.execute(
                text("UPDATE authorizations SET expires_at = :t"),
                {"t": utcnow().replace(year=2001)},
            )
        elif setup == "non_eea":
            conn.execute(text("UPDATE platform_users SET country = 'US'"))
    if setup == "not_approved":
        with transfer.runtime.sessions.begin() as session:
            set_app_status(session, transfer.app_id, "suspended")

    assert run_to_end(transfer, run_id) == RunStatus.CANCELLED
    run = transfer.run(run_id)
    assert run.failure_reason == "consent" and expected in run.last_error
    assert destination.objects == {}


def test_a_single_use_grant_serves_one_run_only(pg_engine, make_transfer):
    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=50, access="single")
    first = transfer.new_run()
    assert run_to_end(transfer, first) == RunStatus.SUCCEEDED
    written = dict(destination.objects)

    second = transfer.new_run()
    assert run_to_end(transfer, second) == RunStatus.CANCELLED
    assert "single-use" in transfer.run(second).last_error
    assert destination.objects == written


def test_only_granted_categories_are_read_even_if_a_run_asks_for_more(pg_engine, make_transfer):
    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=80, categories="posts")
    run_id = transfer.new_run(categories="posts")
    with pg_engine.begin() as conn:  # a run row widened behind the model's back
        conn.execute(
            text("UPDATE runs SET categories = 'direct_messages,posts' WHERE id = :id"),
            {"id": run_id},
        )

    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED

    assert all("/posts/" in key for key in destination.objects)
    assert "direct_messages" in transfer.run(run_id).last_error


def test_transient_destination_errors_retry_and_then_succeed(pg_engine, make_transfer):
    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=60, categories="posts")
    destination.fail_next(2, DestinationTransientError("503 Slow Down"))
    run_id = transfer.new_run()

    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED
    assert transfer.run(run_id).attempts == 3
    assert_exactly_once(transfer, ["posts"])


def test_a_permanent_destination_error_fails_at_once_with_its_message(pg_engine, make_transfer):
    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=60, categories="posts")
    destination.fail_next(1, DestinationPermanentError("bucket 'x' does not exist: create it"))
    run_id = transfer.new_run()

    assert run_to_end(transfer, run_id) == RunStatus.FAILED
    run = transfer.run(run_id)
    assert (run.attempts, run.failure_reason) == (1, "destination_permanent")
    assert "does not exist" in run.last_error


def test_exhausted_attempts_fail_the_run_and_a_rerun_continues_from_the_checkpoint(
    pg_engine, make_transfer
):
    from portability.retries import rerun

    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=60, categories="posts,profile")
    run_to_end(transfer, transfer.new_run())
    mutate(pg_engine, user_id=transfer.user_id, updates=4, deletes=1, seed=2, categories=["posts"])
    run_id = transfer.new_run(max_attempts=2)
    destination.fail_next(10, DestinationTransientError("connection reset"))

    assert run_to_end(transfer, run_id) == RunStatus.FAILED
    assert "gave up after 2 attempts" in transfer.run(run_id).last_error
    destination.fail_next(0, None)

    with transfer.runtime.sessions.begin() as session:
        again = rerun(
            session, run_id, eligible_countries=transfer.runtime.settings.eligible_countries
        ).id
    assert run_to_end(transfer, again) == RunStatus.SUCCEEDED
    assert transfer.run(again).records == 5
    assert_exactly_once(transfer, ["posts", "profile"])


@pytest.mark.parametrize("action", ["revoke", "suspend"])
@pytest.mark.parametrize(
    ("hook", "nth"),
    [("between_batches", 1), ("between_batches", 4), ("after_part", 1), ("after_part", 3)],
)
def test_a_consent_stop_at_any_point_leaves_nothing_of_the_delivery_in_the_bucket(
    pg_engine, make_transfer, test_settings, action, hook, nth
):
    settings = test_settings.model_copy(
        update={"export_batch_size": 10, "export_part_max_records": 20}
    )
    destination = MemoryDestination()
    transfer = make_transfer(
        pg_engine, destination, records=400, categories="posts", settings=settings
    )
    assert run_to_end(transfer, transfer.new_run()) == RunStatus.SUCCEEDED
    delivered_before = dict(destination.objects)
    mutate(
        pg_engine, user_id=transfer.user_id, updates=70, deletes=5, seed=12, categories=["posts"]
    )
    run_id = transfer.new_run()
    seen = {"count": 0}

    def stop_consent(_key: str) -> None:
        seen["count"] += 1
        if seen["count"] != nth:
            return
        with transfer.runtime.sessions.begin() as session:
            if action == "revoke":
                revoke_grant(session, transfer.authorization_id, reason="user withdrew consent")
            else:
                set_app_status(session, transfer.app_id, "suspended")

    outcome = execute_run(transfer.runtime, run_id, hooks=ExportHooks(**{hook: stop_consent}))

    assert (outcome.status, transfer.run(run_id).failure_reason) == ("cancelled", "consent")
    # Nothing of the stopped delivery remains: the bucket holds what earlier manifests list.
    assert destination.objects == delivered_before


def test_a_stream_with_nothing_new_for_many_deliveries_keeps_its_position_then_delivers_once(
    pg_engine, make_transfer
):
    destination = MemoryDestination()
    transfer = make_transfer(pg_engine, destination, records=200, categories="posts,profile")
    run_to_end(transfer, transfer.new_run())
    with pg_engine.connect() as conn:
        idle_before = conn.execute(
            text("SELECT position, sequence FROM streams WHERE category = 'profile'")
        ).one()
    for round_number in range(6):  # posts move on, the profile has nothing new
        mutate(
            pg_engine,
            user_id=transfer.user_id,
            updates=3,
            deletes=0,
            seed=30 + round_number,
            categories=["posts"],
        )
        assert run_to_end(transfer, transfer.new_run()) == RunStatus.SUCCEEDED
    with pg_engine.connect() as conn:
        idle_after = conn.execute(
            text("SELECT position, sequence FROM streams WHERE category = 'profile'")
        ).one()
    mutate(
        pg_engine, user_id=transfer.user_id, updates=1, deletes=0, seed=99, categories=["profile"]
    )
    last = transfer.new_run()
    assert run_to_end(transfer, last) == RunStatus.SUCCEEDED

    assert tuple(idle_after) == tuple(idle_before)  # no manifest, the same position
    profile = manifests(destination, transfer.stream("profile"))
    assert [(m.sequence, m.records) for m in profile] == [(1, 1), (2, 1)]
    assert_exactly_once(transfer, ["posts", "profile"])
    assert_consumer_exact(transfer, ["posts", "profile"])
