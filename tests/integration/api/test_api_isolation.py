"""Promise 8 over HTTP: another app's ids answer exactly like missing ones; and promise 10:
no secret in any response or log line."""

from __future__ import annotations

import logging

import pytest

from tests.fixtures.api import SERVICE_TOKEN, Developer, destination_body, make_world
from tests.fixtures.s3 import create_bucket

pytestmark = pytest.mark.services

MISSING = 2**31 - 1


class Theirs(dict):
    """Their object ids by kind, and their own developer client."""

    developer: Developer


@pytest.fixture
def theirs(world, moto_endpoint):
    """A second app with its own grant, destination, schedule, run, key, webhook endpoint
    and event."""
    other = make_world(world.api, moto_endpoint, name="Theirs")
    developer = other.developer
    schedule = developer.post(
        "/v1/schedules",
        json={"grant_id": other.grant_id, "destination_id": other.destination_id, "cron": "@daily"},
    ).json()
    run = developer.post(
        "/v1/transfers", json={"grant_id": other.grant_id, "destination_id": other.destination_id}
    ).json()
    endpoint = developer.post(
        "/v1/webhook-endpoints", json={"url": "https://93.184.215.14/hooks"}
    ).json()
    (event, *_) = developer.get("/v1/events").json()["items"]
    ids = {
        "grant": other.grant_id,
        "destination": other.destination_id,
        "schedule": schedule["id"],
        "run": run["id"],
        "key": developer.key_id,
        "endpoint": endpoint["id"],
        "event": event["id"],
    }
    found = Theirs(ids)
    found.developer = developer
    return found


def calls(ids, ours):
    """Every endpoint that names an object, with ``ids`` standing for the objects."""
    credentials = {"access_key_id": "AKIA", "secret_access_key": "s3cr3t-value"}
    return [
        ("get", f"/v1/destinations/{ids['destination']}", None),
        ("put", f"/v1/destinations/{ids['destination']}/credentials", credentials),
        ("delete", f"/v1/destinations/{ids['destination']}", None),
        ("get", f"/v1/grants/{ids['grant']}", None),
        ("get", f"/v1/schedules/{ids['schedule']}", None),
        ("post", f"/v1/schedules/{ids['schedule']}/pause", None),
        ("post", f"/v1/schedules/{ids['schedule']}/resume", None),
        ("post", f"/v1/schedules/{ids['schedule']}/run", None),
        ("delete", f"/v1/schedules/{ids['schedule']}", None),
        ("get", f"/v1/runs/{ids['run']}", None),
        ("post", f"/v1/runs/{ids['run']}/cancel", None),
        ("post", f"/v1/keys/{ids['key']}/revoke", None),
        ("get", f"/v1/webhook-endpoints/{ids['endpoint']}", None),
        ("patch", f"/v1/webhook-endpoints/{ids['endpoint']}", {"description": "ours now"}),
        ("delete", f"/v1/webhook-endpoints/{ids['endpoint']}", None),
        ("post", f"/v1/webhook-endpoints/{ids['endpoint']}/rotate-secret", None),
        ("post", f"/v1/webhook-endpoints/{ids['endpoint']}/test", None),
        ("get", f"/v1/webhook-endpoints/{ids['endpoint']}/deliveries", None),
        ("get", f"/v1/events/{ids['event']}", None),
        ("post", f"/v1/events/{ids['event']}/redeliver", {}),
        (
            "post",
            f"/v1/events/{_our_event(ours)}/redeliver",
            {"endpoint_id": ids["endpoint"]},
        ),
        (
            "post",
            "/v1/transfers",
            {"grant_id": ids["grant"], "destination_id": ours.destination_id},
        ),
        (
            "post",
            "/v1/transfers",
            {"grant_id": ours.grant_id, "destination_id": ids["destination"]},
        ),
        (
            "post",
            "/v1/schedules",
            {"grant_id": ids["grant"], "destination_id": ours.destination_id, "cron": "@daily"},
        ),
        (
            "post",
            "/v1/schedules",
            {"grant_id": ours.grant_id, "destination_id": ids["destination"], "cron": "@daily"},
        ),
    ]


def _our_event(ours) -> str:
    return str(ours.developer.get("/v1/events").json()["items"][0]["id"])


def test_every_endpoint_answers_another_apps_ids_exactly_as_missing_ones(world, theirs):
    missing = {name: MISSING for name in ("grant", "destination", "schedule", "run", "endpoint")}
    missing["key"] = "pk_000000000000"
    missing["event"] = "evt_" + "0" * 26
    developer = world.developer
    for (method, path, body), (_, missing_path, missing_body) in zip(
        calls(theirs, world), calls(missing, world), strict=True
    ):
        kwargs = {"json": body} if body is not None else {}
        answer = getattr(developer, method)(path, **kwargs)
        missing_kwargs = {"json": missing_body} if missing_body is not None else {}
        expected = getattr(developer, method)(missing_path, **missing_kwargs)
        assert answer.status_code == 404, (method, path, answer.text)
        mask = {str(v): "ID" for v in theirs.values()} | {str(v): "ID" for v in missing.values()}
        assert _masked(answer.json(), mask) == _masked(expected.json(), mask), (method, path)


LISTS = {
    "destination": "/v1/destinations",
    "grant": "/v1/grants",
    "schedule": "/v1/schedules",
    "run": "/v1/runs",
    "key": "/v1/keys",
    "endpoint": "/v1/webhook-endpoints",
    "event": "/v1/events",
}


def test_another_apps_objects_do_not_appear_in_any_list(world, theirs):
    for kind, path in LISTS.items():
        items = world.developer.get(path).json()["items"]
        found = {item["key_id"] if kind == "key" else item["id"] for item in items}
        assert theirs[kind] not in found, path


def test_their_objects_are_untouched_by_our_calls(world, theirs):
    for method, path, body in calls(theirs, world):
        getattr(world.developer, method)(path, **({"json": body} if body else {}))
    them = theirs.developer
    assert them.get(f"/v1/runs/{theirs['run']}").json()["status"] == "queued"
    assert them.get(f"/v1/schedules/{theirs['schedule']}").json()["state"] == "active"
    assert them.get(f"/v1/destinations/{theirs['destination']}").status_code == 200
    assert [k["state"] for k in them.get("/v1/keys").json()["items"]] == ["active"]
    endpoint = them.get(f"/v1/webhook-endpoints/{theirs['endpoint']}").json()
    assert (endpoint["description"], endpoint["previous_secret_expires_at"]) == ("", None)
    assert them.get(f"/v1/webhook-endpoints/{theirs['endpoint']}/deliveries").json()["items"] == []


def _masked(value, mask):
    text = value if isinstance(value, str) else repr(value)
    for raw, replacement in sorted(mask.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(raw, replacement)
    return text


def test_no_secret_appears_in_any_response_or_log_line(api, moto_endpoint, caplog):
    caplog.set_level(logging.DEBUG)
    secret = moto_endpoint.secret_access_key + "-and-more"  # moto accepts any secret
    developer = api.developer()
    api.platform.put("/internal/users/u1", json={"country": "DE"})
    grant = api.platform.post(
        "/internal/grants",
        json={
            "user_id": "u1",
            "app_id": developer.app_id,
            "categories": "all",
            "access": "ongoing",
        },
    ).json()
    bucket = create_bucket(moto_endpoint)
    responses = [
        developer.post(
            "/v1/destinations",
            json=destination_body(moto_endpoint, bucket, secret_access_key=secret),
        ),
        developer.post(
            "/v1/destinations",
            json=destination_body(moto_endpoint, "missing-bucket-x", secret_access_key=secret),
        ),
    ]
    destination = responses[0].json()["id"]
    responses += [
        developer.get("/v1/destinations"),
        developer.get(f"/v1/destinations/{destination}"),
        developer.put(
            f"/v1/destinations/{destination}/credentials",
            json={"access_key_id": "testing", "secret_access_key": secret},
        ),
        developer.post(
            "/v1/transfers", json={"grant_id": grant["id"], "destination_id": destination}
        ),
        developer.get("/v1/keys"),
        developer.post("/v1/destinations", json={"secret_access_key": secret}),
    ]
    logged = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    for response in responses:
        assert response.status_code < 500, response.text
        for value in (secret, developer.api_key, SERVICE_TOKEN):
            assert value not in response.text
    for value in (secret, developer.api_key, SERVICE_TOKEN):
        assert value not in logged
