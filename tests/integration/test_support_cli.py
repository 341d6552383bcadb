"""Support's runbook, through the real entry point, against PostgreSQL, Redis, SeaweedFS and a
real Celery worker: find a failed transfer, read its diagnosis, retry it after the fix, follow
it to the end; approve and suspend apps; ``doctor`` on a healthy and a broken installation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from portability.cli._errors import EXIT_FAILED, EXIT_OK
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import AppStatus, Destination, Schedule
from portability.destinations.memory import MemoryDestination
from portability.destinations.s3 import S3Destination
from portability.registry import create_schedule
from portability.settings import Settings
from tests.fixtures.db import create_pg_schema, drop_pg_schema, pg_schema_url
from tests.fixtures.s3 import READER_ACCESS_KEY_ID, READER_SECRET_ACCESS_KEY
from tests.fixtures.transfers import assert_consumer_exact, assert_exactly_once, run_to_end

pytestmark = [pytest.mark.services]

#: A loopback port in this suite's range where nothing listens.
CLOSED_BROKER = "redis://127.0.0.1:19397/0"


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        encryption_key=env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=env["PORTABILITY_PSEUDONYM_KEY"],
        manifest_signing_keys=env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
        data_dir=Path(env["PORTABILITY_DATA_DIR"]),
        allow_http_endpoints=True,  # the test S3 server listens on http://127.0.0.1
        allow_private_endpoints=True,
    )


@pytest.mark.slow
def test_a_run_denied_by_its_destination_is_found_explained_and_retried_after_the_fix(
    cli, pg_url, worker_env, start_worker, make_transfer, s3_endpoint, make_bucket
):
    bucket = make_bucket(s3_endpoint)
    engine = make_engine(pg_url)
    transfer = make_transfer(
        engine,
        S3Destination(s3_endpoint.config(bucket)),
        records=300,
        categories="posts,profile",
        settings=_settings(worker_env),
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=READER_ACCESS_KEY_ID,  # may read, may not write: AccessDenied
        secret_access_key=READER_SECRET_ACCESS_KEY,
    )
    start_worker(env=worker_env)
    env = {**worker_env, "PORTABILITY_ACTOR": "support-bob"}

    created = cli(
        "runs",
        "create",
        "--authorization",
        transfer.authorization_id,
        "--destination",
        transfer.destination_id,
        "--json",
        env=env,
    )
    run_id = json.loads(created.stdout)["id"]
    waited = cli("runs", "wait", run_id, "--interval", "0.2", "--timeout", "60", env=env)
    listed = cli("runs", "list", "--status", "failed", "--since", "1h", "--json", env=env)
    shown = cli("runs", "show", run_id, env=env)

    assert waited.exit_code == EXIT_FAILED, waited.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    assert "the destination denied access: the developer must fix the bucket policy" in (
        shown.stdout
    )

    with make_session_factory(engine).begin() as session:  # the developer fixes the keys
        row = session.get(Destination, transfer.destination_id)
        row.credentials_encrypted = CredentialBox(
            _settings(worker_env).resolved_encryption_keys()
        ).seal(
            {
                "access_key_id": s3_endpoint.access_key_id,
                "secret_access_key": s3_endpoint.secret_access_key,
            }
        )
    tested = cli("destinations", "test", transfer.destination_id, env=env)
    retried = cli("runs", "retry", run_id, "--json", env=env)
    retry_id = json.loads(retried.stdout)[0]["retry"]
    done = cli("runs", "wait", retry_id, "--interval", "0.2", "--timeout", "60", env=env)

    assert tested.exit_code == EXIT_OK, tested.stderr
    assert done.exit_code == EXIT_OK, done.stdout + done.stderr
    assert_exactly_once(transfer, ["posts", "profile"])
    assert_consumer_exact(transfer, ["posts", "profile"])
    audit = json.loads(cli("audit", "list", "--by", "support-bob", "--json", env=env).stdout)
    assert [e["command"] for e in audit] == ["runs retry", "destinations test", "runs create"]
    engine.dispose()


def test_approval_gates_transfers_and_suspension_stops_them(
    cli, pg_engine, pg_url, make_transfer, tmp_path
):
    transfer = make_transfer(pg_engine, MemoryDestination(), records=50, categories="posts")
    env = {"PORTABILITY_DATABASE_URL": pg_url, "PORTABILITY_DATA_DIR": str(tmp_path / "cli")}
    with pg_engine.begin() as conn:  # as registered by a developer, before review
        conn.execute(
            text("UPDATE apps SET status = 'pending' WHERE id = :a"), {"a": transfer.app_id}
        )
    with transfer.runtime.sessions.begin() as session:
        schedule_id = create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts",
            cron="@daily",
        ).id

    pending = run_to_end(transfer, transfer.new_run("posts"))
    approved = cli("apps", "approve", transfer.app_id, "--note", "use case checked", env=env)
    after_approval = run_to_end(transfer, transfer.new_run("posts"))
    unexplained = cli("apps", "suspend", transfer.app_id, env=env)
    suspended = cli("apps", "suspend", transfer.app_id, "--note", "abuse report 17", env=env)
    after_suspension = run_to_end(transfer, transfer.new_run("posts"))

    assert (pending, approved.exit_code, after_approval) == ("cancelled", EXIT_OK, "succeeded")
    assert unexplained.exit_code == 2 and "--note is required" in unexplained.stderr
    assert (suspended.exit_code, after_suspension) == (EXIT_OK, "cancelled")
    with transfer.runtime.sessions() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule.next_run_at is None and "suspended" in schedule.disabled_reason
    shown = json.loads(cli("apps", "show", transfer.app_id, "--json", env=env).stdout)
    assert shown["status"] == AppStatus.SUSPENDED
    assert [r["note"] for r in shown["reviews"]] == ["abuse report 17", "use case checked"]


def test_doctor_passes_with_a_live_worker(cli, worker_env, start_worker):
    start_worker(env=worker_env)

    result = cli("doctor", "--json", env=worker_env)

    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.exit_code == EXIT_OK, checks
    assert "1 answered" in checks["workers"]["detail"]


def test_doctor_names_a_stopped_broker_and_what_to_do(cli, worker_env):
    env = {**worker_env, "PORTABILITY_BROKER_URL": CLOSED_BROKER}

    result = cli("doctor", "--timeout", "0.5", "--json", env=env)

    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.exit_code == EXIT_FAILED
    assert not checks["broker"]["ok"]
    assert "127.0.0.1:19397" in checks["broker"]["detail"]
    assert "check PORTABILITY_BROKER_URL" in checks["broker"]["detail"]


def test_doctor_names_an_unmigrated_database_and_the_command_that_fixes_it(cli, tmp_path):
    schema = create_pg_schema("cli")
    try:
        env = {
            "PORTABILITY_DATABASE_URL": pg_schema_url(schema),
            "PORTABILITY_DATA_DIR": str(tmp_path / "cli"),
        }
        result = cli("doctor", "--json", env=env)
    finally:
        drop_pg_schema(schema)

    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.exit_code == EXIT_FAILED
    assert not checks["schema"]["ok"]
    assert "never migrated" in checks["schema"]["detail"]
    assert "run `portability db upgrade`" in checks["schema"]["detail"]
