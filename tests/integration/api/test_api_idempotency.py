"""``Idempotency-Key``: a retried create never makes a second object."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from portability.db.engine import make_engine

pytestmark = pytest.mark.services


def count_runs(settings) -> int:
    engine = make_engine(settings)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
    engine.dispose()
    return int(count)


def test_the_same_transfer_twice_with_one_key_returns_the_same_run_and_makes_one(
    world, api_settings
):
    body = {"grant_id": world.grant_id, "destination_id": world.destination_id}
    headers = {"Idempotency-Key": "transfer-0001"}
    first = world.developer.post("/v1/transfers", json=body, headers=headers)
    second = world.developer.post("/v1/transfers", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert count_runs(api_settings) == 1
    assert world.api.enqueued == [first.json()["id"]]


def test_the_same_key_with_a_different_body_is_refused(world, api_settings):
    headers = {"Idempotency-Key": "transfer-0002"}
    body = {"grant_id": world.grant_id, "destination_id": world.destination_id}
    world.developer.post("/v1/transfers", json=body, headers=headers)
    response = world.developer.post(
        "/v1/transfers", json={**body, "categories": ["posts"]}, headers=headers
    )
    assert (response.status_code, response.json()["field"]) == (422, "Idempotency-Key")
    assert count_runs(api_settings) == 1


def test_keys_are_per_app_so_two_apps_may_use_the_same_one(world, moto_endpoint):
    from tests.fixtures.api import make_world

    other = make_world(world.api, moto_endpoint, name="Other")
    headers = {"Idempotency-Key": "shared-key"}
    ours = world.developer.post(
        "/v1/transfers",
        json={"grant_id": world.grant_id, "destination_id": world.destination_id},
        headers=headers,
    )
    theirs = other.developer.post(
        "/v1/transfers",
        json={"grant_id": other.grant_id, "destination_id": other.destination_id},
        headers=headers,
    )
    assert (ours.status_code, theirs.status_code) == (201, 201)
    assert ours.json()["id"] != theirs.json()["id"]


def test_a_refused_create_stores_no_answer_so_a_corrected_retry_succeeds(world):
    headers = {"Idempotency-Key": "schedule-0001"}
    body = {"grant_id": world.grant_id, "destination_id": world.destination_id, "cron": "bad"}
    refused = world.developer.post("/v1/schedules", json=body, headers=headers)
    fixed = world.developer.post(
        "/v1/schedules", json={**body, "cron": "@daily"}, headers={"Idempotency-Key": "s-2"}
    )
    assert (refused.status_code, fixed.status_code) == (422, 201)


@pytest.mark.parametrize("path", ["/v1/destinations", "/v1/schedules", "/internal/grants"])
def test_every_create_documents_the_idempotency_key(api, path):
    operation = api.client.get("/openapi.json").json()["paths"][path]["post"]
    assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
