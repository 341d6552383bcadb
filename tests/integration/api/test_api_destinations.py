"""Destinations: registered only after the connection test, shown without secrets, re-keyed
with a new test, deleted unless a schedule uses them."""

from __future__ import annotations

import pytest

from tests.fixtures.api import destination_body
from tests.fixtures.s3 import create_bucket

pytestmark = pytest.mark.services

PROBLEMS = "https://portability.example/problems/"


def test_a_destination_is_created_after_the_probe_object_was_written_and_deleted(
    api, moto_endpoint
):
    developer = api.developer()
    bucket = create_bucket(moto_endpoint)
    response = developer.post("/v1/destinations", json=destination_body(moto_endpoint, bucket))
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: body[k] for k in ("bucket", "prefix", "compression")} == {
        "bucket": bucket,
        "prefix": "exports",
        "compression": "gzip",
    }
    assert moto_endpoint.client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_destination_that_cannot_be_written_is_refused_with_the_reason(api, moto_endpoint):
    developer = api.developer()
    body = destination_body(moto_endpoint, "no-such-bucket-here")
    response = developer.post("/v1/destinations", json=body)
    problem = response.json()
    assert (response.status_code, problem["type"]) == (422, PROBLEMS + "destination-test-failed")
    assert "no-such-bucket-here" in problem["detail"]
    assert developer.get("/v1/destinations").json()["items"] == []


def test_a_destination_with_a_bad_bucket_name_is_refused_before_any_request(api, moto_endpoint):
    developer = api.developer()
    response = developer.post(
        "/v1/destinations", json=destination_body(moto_endpoint, "Bad_Bucket!")
    )
    assert (response.status_code, response.json()["type"]) == (422, PROBLEMS + "validation-error")


def test_list_and_show_never_return_credentials(world):
    developer, endpoint = world.developer, world.endpoint
    listed = developer.get("/v1/destinations")
    shown = developer.get(f"/v1/destinations/{world.destination_id}")
    assert [d["id"] for d in listed.json()["items"]] == [world.destination_id]
    assert shown.json()["id"] == world.destination_id
    for response in (listed, shown):
        assert endpoint.secret_access_key not in response.text
        assert "access_key" not in response.text


def test_rotating_credentials_runs_the_test_again_and_keeps_the_old_keys_on_failure(world):
    developer, endpoint = world.developer, world.endpoint
    path = f"/v1/destinations/{world.destination_id}/credentials"
    good = {"access_key_id": endpoint.access_key_id, "secret_access_key": "rotated-secret-1"}
    assert developer.put(path, json=good).status_code == 200

    def failing_probe(_config):
        from portability.errors import DestinationPermanentError

        raise DestinationPermanentError("access denied to bucket: check the keys")

    world.api.client.app.state.context.probe = failing_probe
    response = developer.put(path, json={"access_key_id": "x", "secret_access_key": "bad"})
    assert (response.status_code, response.json()["type"]) == (
        422,
        PROBLEMS + "destination-test-failed",
    )
    assert "check the keys" in response.json()["detail"]


def test_a_destination_used_by_a_schedule_cannot_be_deleted_until_the_schedule_is(world):
    developer = world.developer
    schedule = developer.post(
        "/v1/schedules",
        json={"grant_id": world.grant_id, "destination_id": world.destination_id, "cron": "@daily"},
    ).json()
    refused = developer.delete(f"/v1/destinations/{world.destination_id}")
    assert (refused.status_code, refused.json()["type"]) == (409, PROBLEMS + "conflict")
    assert f"schedule(s) {schedule['id']}" in refused.json()["detail"]

    assert developer.delete(f"/v1/schedules/{schedule['id']}").status_code == 204
    assert developer.delete(f"/v1/destinations/{world.destination_id}").status_code == 204
    assert developer.get(f"/v1/destinations/{world.destination_id}").status_code == 404
    assert developer.get("/v1/destinations").json()["items"] == []


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "http://10.1.2.3",
        "http://169.254.169.254",
        "http://[::1]:9000",
        "http://[::ffff:192.168.0.1]",
    ],
)
def test_an_endpoint_inside_our_network_is_refused_before_any_request(make_api, endpoint):
    api = make_api(allow_http_endpoints=True, allow_private_endpoints=False)
    developer = api.developer()
    probed = []
    api.client.app.state.context.probe = probed.append
    body = {
        "endpoint_url": endpoint,
        "bucket": "some-bucket",
        "access_key_id": "k",
        "secret_access_key": "s",
    }
    response = developer.post("/v1/destinations", json=body)
    assert (response.status_code, response.json()["field"]) == (422, "endpoint_url")
    detail = response.json()["detail"]
    reasons = ("internal address", "metadata service", "loopback", "public internet address")
    assert any(reason in detail for reason in reasons), detail
    assert probed == []
