"""Events through real Celery processes on real Redis: an export worker, a worker of the
``portability.events`` queue and beat (the dispatcher), delivering to a real receiver."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from portability import registry, webhooks
from portability.db.engine import make_engine
from portability.db.models import AppStatus, RunStatus
from portability.destinations.s3 import S3Destination
from portability.runtime import Runtime
from portability.settings import Settings
from tests.fixtures.workers import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

EVENTS_QUEUE = "portability.events"


@pytest.fixture
def events_env(worker_env):
    return dict(
        worker_env,
        PORTABILITY_EVENTS_DISPATCH_INTERVAL_SECONDS="0.2",
        PORTABILITY_WEBHOOK_TIMEOUT_SECONDS="0.5",
        PORTABILITY_WEBHOOK_RESEND_AFTER_SECONDS="1",
    )


def settings_of(env: dict[str, str]) -> Settings:
    """The settings the worker processes read from ``env``."""
    return Settings(
        data_dir=Path(env["PORTABILITY_DATA_DIR"]),
        database_url=SecretStr(env["PORTABILITY_DATABASE_URL"]),
        broker_url=SecretStr(env["PORTABILITY_BROKER_URL"]),
        encryption_key=SecretStr(env["PORTABILITY_ENCRYPTION_KEY"]),
        pseudonym_key=SecretStr(env["PORTABILITY_PSEUDONYM_KEY"]),
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )


@pytest.fixture
def runtime(events_env):
    runtime = Runtime.from_settings(settings_of(events_env))
    yield runtime
    runtime.close()


def app_with_endpoint(runtime, url: str) -> tuple[int, str]:
    with runtime.sessions.begin() as session:
        app, _ = registry.create_app(
            session, name="Acme", contact_email="dev@acme.test", use_case="backs up user data"
        )
        registry.set_app_status(session, app.id, AppStatus.APPROVED)
        _, secret = webhooks.create_endpoint(
            session, runtime.box, app_id=app.id, url=url, policy=runtime.settings.endpoint_policy
        )
        return app.id, secret


def grant(runtime, app_id: int) -> None:
    """The state change of these tests: a user's grant (``authorization.created``)."""
    with runtime.sessions.begin() as session:
        registry.add_user(session, user_id="u1", country="DE")
        registry.grant(
            session,
            user_id="u1",
            app_id=app_id,
            categories="posts",
            access="ongoing",
            eligible_countries={"DE"},
        )


def test_a_run_executed_by_a_worker_is_announced_by_the_events_worker(
    events_env, start_worker, start_beat, make_transfer, s3_endpoint, make_bucket, receiver, pg_url
):
    settings = settings_of(events_env)
    transfer = s3_transfer(
        make_transfer,
        pg_url,
        s3_endpoint,
        settings,
        make_bucket(s3_endpoint),
        records=50,
        categories="posts,profile",
    )
    secret = hook(transfer, receiver.url)
    start_worker(env=events_env, name="exports")
    start_worker("-Q", EVENTS_QUEUE, env=events_env, name="events")
    start_beat(env=events_env)
    run_id = transfer.new_run()
    from workers.app import EXPORT_TASK, create_app

    create_app(settings).send_task(EXPORT_TASK, args=[run_id])

    wait_until(lambda: receiver.of_type("run.succeeded", secret), timeout=60, what="run.succeeded")
    (succeeded,) = receiver.of_type("run.succeeded", secret)
    assert (succeeded["data"]["run_id"], succeeded["data"]["status"]) == (
        run_id,
        RunStatus.SUCCEEDED.value,
    )
    assert succeeded["data"]["user"] == transfer.pseudonym
    wait_until(
        lambda: len(receiver.of_type("stream.replayed", secret)) == 2,
        timeout=30,
        what="two stream.replayed",
    )
    # Granted before the endpoint existed, but not dispatched yet: it is delivered too.
    assert len(receiver.of_type("authorization.created", secret)) == 1


def test_a_receiver_failing_three_times_gets_retries_spaced_as_configured_then_one_success(
    events_env, start_worker, start_beat, runtime, receiver
):
    base, jitter = 0.4, 0.25
    env = dict(
        events_env,
        PORTABILITY_WEBHOOK_RETRY_BASE_SECONDS=str(base),
        PORTABILITY_WEBHOOK_RETRY_JITTER=str(jitter),
    )
    receiver.respond(500, 502, 503)
    app_id, secret = app_with_endpoint(runtime, receiver.url)
    start_worker("-Q", EVENTS_QUEUE, env=env, name="events")
    start_beat(env=env)

    grant(runtime, app_id)

    requests = receiver.wait_for(1, timeout=60)
    assert [r.status for r in receiver.requests] == [500, 502, 503, 204]
    assert len(requests) == 1 and requests[0].verified(secret)["type"] == "authorization.created"
    assert len({r.id for r in receiver.requests}) == 1
    arrivals = [r.at for r in receiver.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    for attempt, gap in enumerate(gaps):
        wait = base * 2**attempt
        assert wait <= gap <= wait * (1 + jitter) + 0.5, (attempt, gaps)

    def recorded() -> tuple[str, int]:
        with runtime.engine.connect() as conn:
            row = conn.execute(text("SELECT status, attempts FROM webhook_deliveries")).one()
        return (row.status, row.attempts)

    # The receiver answered; the worker records the success just after.
    wait_until(lambda: recorded()[0] != "pending", timeout=10, what="the success recorded")
    assert recorded() == ("succeeded", 4)


def test_an_events_worker_killed_mid_delivery_leaves_the_event_to_be_delivered_with_its_id(
    events_env, start_worker, start_beat, runtime, receiver
):
    app_id, secret = app_with_endpoint(runtime, receiver.url)
    receiver.respond(503)  # what the killed worker's request gets once the receiver answers
    receiver.hold()
    first = start_worker("-Q", EVENTS_QUEUE, env=events_env, name="events")
    start_beat(env=events_env)
    grant(runtime, app_id)
    assert receiver.holding.wait(30), "the first attempt never reached the receiver"

    first.kill()
    receiver.release()
    start_worker("-Q", EVENTS_QUEUE, env=events_env, name="events")

    (delivered,) = receiver.wait_for(1, timeout=60)
    assert delivered.verified(secret)["type"] == "authorization.created"
    assert {r.id for r in receiver.requests} == {delivered.id}
    assert [r.status for r in receiver.requests] == [503, 204]


@pytest.fixture
def workers_api(make_api, events_env):
    """The developer API of the workers' deployment: their database and keys, publishing
    deliveries to their broker through ``workers.celery_enqueue_deliveries``, as
    ``portability api`` does."""
    from workers import celery_enqueue_deliveries

    return make_api(
        enqueue_deliveries=celery_enqueue_deliveries(settings_of(events_env)),
        encryption_key=events_env["PORTABILITY_ENCRYPTION_KEY"],
        webhook_secret_overlap_seconds=4,
    )


def test_an_endpoint_registered_through_the_api_gets_its_test_event_from_an_events_worker(
    events_env, start_worker, workers_api, receiver
):
    start_worker("-Q", EVENTS_QUEUE, env=events_env, name="events")  # no beat: the API publishes
    developer = workers_api.developer()
    endpoint = developer.post("/v1/webhook-endpoints", json={"url": receiver.url}).json()
    deliveries = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

    queued = developer.post(f"/v1/webhook-endpoints/{endpoint['id']}/test").json()

    (request,) = receiver.wait_for(1, timeout=30)
    assert request.id == queued["event_id"]
    assert request.verified(endpoint["secret"])["type"] == "webhook.test"
    wait_until(
        lambda: developer.get(deliveries).json()["items"][0]["status"] == "succeeded",
        timeout=10,
        what="the delivery recorded as succeeded",
    )
    (shown,) = developer.get(deliveries).json()["items"]
    assert (shown["attempts"], shown["response_code"]) == (1, 204)


def test_after_a_rotation_through_the_api_both_secrets_verify_until_the_overlap_ends(
    events_env, start_worker, workers_api, receiver
):
    start_worker("-Q", EVENTS_QUEUE, env=events_env, name="events")
    developer = workers_api.developer()
    endpoint = developer.post("/v1/webhook-endpoints", json={"url": receiver.url}).json()
    path = f"/v1/webhook-endpoints/{endpoint['id']}"

    rotated = developer.post(f"{path}/rotate-secret").json()
    developer.post(f"{path}/test")
    (during,) = receiver.wait_for(1, timeout=30)
    overlap_end = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    wait_until(lambda: datetime.now(UTC) > overlap_end, timeout=10, what="the overlap's end")
    developer.post(f"{path}/test")
    _, after = receiver.wait_for(2, timeout=30)

    old, new = endpoint["secret"], rotated["secret"]
    assert (during.verifies_with(old), during.verifies_with(new)) == (True, True)
    assert (after.verifies_with(old), after.verifies_with(new)) == (False, True)


def s3_transfer(
    make_transfer,
    pg_url,
    s3_endpoint,
    settings,
    bucket: str,
    *,
    records: int = 20,
    categories: str = "posts",
):
    """A transfer to ``bucket`` on the test S3 server, registered as a developer would."""
    return make_transfer(
        make_engine(pg_url),
        S3Destination(s3_endpoint.config(bucket)),
        records=records,
        categories=categories,
        settings=settings,
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )


def hook(transfer, url: str) -> str:
    with transfer.runtime.sessions.begin() as session:
        _, secret = webhooks.create_endpoint(
            session,
            transfer.runtime.box,
            app_id=transfer.app_id,
            url=url,
            policy=transfer.runtime.settings.endpoint_policy,
        )
    return secret


def test_a_run_failing_on_a_missing_bucket_is_announced_as_run_failed_and_destination_failing(
    events_env, start_worker, start_beat, make_transfer, s3_endpoint, receiver, pg_url
):
    env = dict(events_env, PORTABILITY_EVENTS_DESTINATION_FAILING_AFTER="1")
    settings = settings_of(env)
    transfer = s3_transfer(make_transfer, pg_url, s3_endpoint, settings, "no-such-bucket-x1")
    secret = hook(transfer, receiver.url)
    start_worker(env=env, name="exports")
    start_worker("-Q", EVENTS_QUEUE, env=env, name="events")
    start_beat(env=env)
    from workers.app import EXPORT_TASK, create_app

    run_id = transfer.new_run()
    create_app(settings).send_task(EXPORT_TASK, args=[run_id])

    wait_until(lambda: receiver.of_type("destination.failing", secret), timeout=60, what="failing")
    (failed,) = receiver.of_type("run.failed", secret)
    assert (failed["data"]["run_id"], failed["data"]["failure_reason"]) == (
        run_id,
        "destination_permanent",
    )
    (failing,) = receiver.of_type("destination.failing", secret)
    assert failing["data"]["destination_id"] == transfer.destination_id
    assert failing["data"]["run_ids"] == [run_id]


def test_suspending_an_app_through_the_cli_is_announced_once_though_a_worker_meets_it_later(
    events_env,
    start_worker,
    start_beat,
    make_transfer,
    s3_endpoint,
    make_bucket,
    receiver,
    pg_url,
    cli,
):
    settings = settings_of(events_env)
    transfer = s3_transfer(make_transfer, pg_url, s3_endpoint, settings, make_bucket(s3_endpoint))
    secret = hook(transfer, receiver.url)
    with transfer.runtime.sessions.begin() as session:
        schedule_id = registry.create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts",
            cron="@daily",
        ).id
    run_id = transfer.new_run()  # queued before the suspension, taken by a worker after it
    from workers.app import EXPORT_TASK, create_app

    create_app(settings).send_task(EXPORT_TASK, args=[run_id])
    suspended = cli(
        "apps",
        "suspend",
        transfer.app_id,
        "--note",
        "abuse report 17",
        env={**events_env, "PORTABILITY_ACTOR": "staff-alice"},
    )
    assert suspended.exit_code == 0, suspended.stderr
    start_worker(env=events_env, name="exports")
    start_worker("-Q", EVENTS_QUEUE, env=events_env, name="events")
    start_beat(env=events_env)

    wait_until(lambda: receiver.of_type("run.cancelled", secret), timeout=60, what="cancelled")
    (removed,) = receiver.of_type("authorization.removed", secret)
    assert (removed["data"]["authorization_id"], removed["data"]["reason"]) == (
        transfer.authorization_id,
        "app_suspended",
    )
    (disabled,) = receiver.of_type("schedule.disabled", secret)
    assert (disabled["data"]["schedule_id"], disabled["data"]["reason"]) == (
        schedule_id,
        "app_suspended",
    )
    (cancelled,) = receiver.of_type("run.cancelled", secret)
    assert (cancelled["data"]["run_id"], cancelled["data"]["failure_reason"]) == (
        run_id,
        "consent",
    )
    with transfer.runtime.engine.connect() as conn:  # nothing more owed or recorded
        removals = conn.execute(
            text("SELECT count(*) FROM events WHERE type = 'authorization.removed'")
        ).scalar_one()
    assert removals == 1


KILLED_AFTER_COMMIT = """
import os, signal
from portability import registry
from portability.runtime import Runtime
from portability.settings import Settings

runtime = Runtime.from_settings(Settings())
with runtime.sessions.begin() as session:
    registry.add_user(session, user_id="u1", country="DE")
    registry.grant(session, user_id="u1", app_id={app_id}, categories="posts",
                   access="ongoing", eligible_countries={{"DE"}})
os.kill(os.getpid(), signal.SIGKILL)  # the moment the state change has committed
"""


def test_a_process_killed_right_after_its_state_change_commits_still_has_its_event_delivered(
    events_env, start_worker, start_beat, runtime, receiver
):
    app_id, secret = app_with_endpoint(runtime, receiver.url)
    start_worker("-Q", EVENTS_QUEUE, env=events_env, name="events")
    start_beat(env=events_env)

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT.format(app_id=app_id)],
        env=events_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (delivered,) = receiver.wait_for(1, timeout=60)
    with runtime.engine.connect() as conn:
        recorded = conn.execute(
            text("SELECT id FROM events WHERE type = 'authorization.created'")
        ).scalar_one()
    assert delivered.id == recorded
    assert delivered.verified(secret)["type"] == "authorization.created"


EVENTS_METRICS_PORT = 19613


def test_the_events_worker_serves_delivery_series_after_a_real_delivery(
    events_env, start_worker, start_beat, runtime, receiver, tmp_path
):
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = dict(
        events_env,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        PORTABILITY_WORKER_METRICS_PORT=str(EVENTS_METRICS_PORT),
        PORTABILITY_WEBHOOK_RETRY_BASE_SECONDS="0.3",
        PORTABILITY_WEBHOOK_RETRY_JITTER="0",
    )
    receiver.respond(500)  # one retry, then delivered
    app_id, _ = app_with_endpoint(runtime, receiver.url)
    start_worker("-Q", EVENTS_QUEUE, env=env, name="events")
    start_beat(env=env)

    grant(runtime, app_id)
    receiver.wait_for(1, timeout=60)

    def scraped() -> dict[str, float] | None:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{EVENTS_METRICS_PORT}/metrics", timeout=5
        ) as response:
            found = samples(response.read().decode())
        delivered = found.get('portability_webhook_attempts_total{outcome="delivered"}')
        return found if delivered == 1.0 else None

    found = wait_until(scraped, timeout=20, what="the delivery's series on /metrics")
    with runtime.engine.connect() as conn:
        occurred, finished = conn.execute(
            text(
                "SELECT e.occurred_at, d.finished_at FROM webhook_deliveries d "
                "JOIN events e ON e.id = d.event_id"
            )
        ).one()
    assert found['portability_webhook_attempts_total{outcome="retry"}'] == 1.0
    assert found["portability_webhook_attempt_seconds_count"] == 2.0
    assert found["portability_webhook_delivery_delay_seconds_count"] == 1.0
    delay = found["portability_webhook_delivery_delay_seconds_sum"]
    assert 0.3 <= delay <= (finished - occurred).total_seconds() + 0.5


def test_the_api_metrics_show_the_events_outbox_backlog(api, runtime):
    app_id, _ = app_with_endpoint(runtime, "http://127.0.0.1:9/hook")
    grant(runtime, app_id)  # one event recorded; no dispatcher runs here

    found = samples(api.client.get("/metrics/").text)

    assert found["portability_events_outbox_backlog"] == 1.0


def samples(body: str) -> dict[str, float]:
    """A scrape's samples by name and labels."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("portability_")
    }
