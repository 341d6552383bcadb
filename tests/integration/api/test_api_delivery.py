"""End to end through the API: a transfer created over HTTP is published after its commit,
executed by a real Celery worker, delivered to SeaweedFS and consumed exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from portability.api import create_app
from portability.categories import Category
from portability.cli.api import celery_enqueue_later
from portability.consumer import SqliteStore, consume, open_bucket
from portability.platform.seed import seed
from portability.pseudonyms import Pseudonymizer
from portability.settings import Settings
from tests.fixtures.api import SERVICE_TOKEN, ApiHarness, destination_body
from tests.fixtures.s3 import create_bucket
from tests.fixtures.transfers import app_view_of_state
from tests.fixtures.workers import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

CATEGORIES = [c.value for c in Category]


def test_a_transfer_created_through_the_api_is_delivered_by_a_worker_and_consumed_exactly(
    pg_engine, worker_env, start_worker, s3_endpoint, tmp_path
):
    settings = Settings(
        data_dir=Path(worker_env["PORTABILITY_DATA_DIR"]),
        database_url=worker_env["PORTABILITY_DATABASE_URL"],
        broker_url=worker_env["PORTABILITY_BROKER_URL"],
        encryption_key=worker_env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=worker_env["PORTABILITY_PSEUDONYM_KEY"],
        manifest_signing_keys=worker_env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
        web_session_key="test-web-session-key-" + "s" * 32,
        api_service_token=SERVICE_TOKEN,
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )
    user_id = seed(pg_engine, users=1, records_per_user=500, seed=3).user_ids[0]
    start_worker()
    enqueue = celery_enqueue_later(settings)  # what `portability api` publishes with
    with TestClient(create_app(settings, enqueue=enqueue)) as client:
        api = ApiHarness(client, settings)
        developer = api.developer()
        assert api.platform.put(f"/internal/users/{user_id}", json={"country": "DE"}).is_success
        grant = api.platform.post(
            "/internal/grants",
            json={
                "user_id": user_id,
                "app_id": developer.app_id,
                "categories": "all",
                "access": "ongoing",
            },
        ).json()
        bucket = create_bucket(s3_endpoint)
        destination = developer.post(
            "/v1/destinations", json=destination_body(s3_endpoint, bucket)
        ).json()
        run = developer.post(
            "/v1/transfers", json={"grant_id": grant["id"], "destination_id": destination["id"]}
        ).json()

        def finished():
            shown = developer.get(f"/v1/runs/{run['id']}").json()
            return shown if shown["status"] in {"succeeded", "failed", "cancelled"} else None

        shown = wait_until(finished, timeout=120, what=f"run {run['id']} to finish")

    assert (shown["status"], shown["message"]) == ("succeeded", None)
    assert sorted(c["category"] for c in shown["per_category"]) == sorted(CATEGORIES)
    assert all(c["manifest_key"] for c in shown["per_category"])
    developer_bucket = open_bucket(
        bucket,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
        endpoint_url=s3_endpoint.endpoint_url,
        region=s3_endpoint.region,
    )
    pseudonyms = Pseudonymizer(settings.resolved_pseudonym_key(), developer.app_id, user_id)
    user = pseudonyms.owner_pseudonym
    with SqliteStore(str(tmp_path / "consumer.db")) as store:
        report = consume(developer_bucket, store, prefix="exports")
        local = {c: {rid: data for rid, _at, data in store.records(c, user)} for c in CATEGORIES}
    assert report.ok and report.problems == []
    assert shown["records"] == report.records
    assert local == {c: app_view_of_state(pg_engine, pseudonyms, user_id, c) for c in CATEGORIES}
