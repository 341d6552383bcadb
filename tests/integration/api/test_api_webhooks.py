"""``/v1/webhook-endpoints`` and ``/v1/events`` over HTTP: register, show, change, rotate and
delete endpoints; watch deliveries; read, redeliver and test events. Deliveries are attempted
in-process as an events worker would (``attempt_delivery``) on a real loopback receiver that
verifies every signature with the ``standardwebhooks`` package."""

from __future__ import annotations

import logging

import pytest

from portability.events.dispatch import dispatch_events
from portability.events.send import attempt_delivery
from portability.runtime import Runtime
from tests.fixtures.api import give_grant

pytestmark = pytest.mark.services

PROBLEMS = "https://portability.example/problems/"


@pytest.fixture
def runtime(api):
    """What an events worker of this API's deployment holds (same database and keys)."""
    runtime = Runtime.from_settings(api.settings)
    yield runtime
    runtime.close()


def register(developer, url: str, **fields) -> dict:
    response = developer.post("/v1/webhook-endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def deliver_published(api, runtime) -> list[str]:
    """Attempt, once each, the deliveries the API published; their outcomes."""
    ids, api.published[:] = list(api.published), []
    return [attempt_delivery(runtime, delivery_id).status for delivery_id in ids]


def user_granted(api, developer) -> int:
    user_id = f"u{len(api.enqueued)}-{developer.app_id}"
    api.platform.put(f"/internal/users/{user_id}", json={"country": "DE"})
    return give_grant(api, developer.app_id, user_id)


def test_an_endpoint_is_registered_with_its_secret_shown_once(api, receiver):
    developer = api.developer()

    created = register(developer, receiver.url, event_types=["run.failed", "run.succeeded"])

    assert created["secret"].startswith("whsec_")
    shown = developer.get(f"/v1/webhook-endpoints/{created['id']}")
    listed = developer.get("/v1/webhook-endpoints").json()["items"]
    assert shown.json() == {k: v for k, v in created.items() if k != "secret"}
    assert listed == [shown.json()]
    assert shown.json()["enabled"] is True
    assert shown.json()["event_types"] == ["run.failed", "run.succeeded"]
    assert created["secret"] not in shown.text + str(listed)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://10.1.2.3/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("https://metadata.google.internal/hooks", "metadata"),
        ("https://localhost/hooks", "public internet address"),
        ("http://example.com/hooks", "https"),
    ],
)
def test_a_url_the_network_policy_refuses_is_a_422_naming_the_problem(make_api, url, problem):
    api = make_api(allow_http_endpoints=False, allow_private_endpoints=False)
    developer = api.developer()

    response = developer.post("/v1/webhook-endpoints", json={"url": url})

    body = response.json()
    assert (response.status_code, body["type"], body["field"]) == (
        422,
        PROBLEMS + "validation-error",
        "url",
    )
    assert problem in body["detail"], body["detail"]
    assert developer.get("/v1/webhook-endpoints").json()["items"] == []


def test_a_new_url_passes_the_network_policy_as_at_registration(make_api):
    api = make_api(allow_http_endpoints=False, allow_private_endpoints=False)
    developer = api.developer()
    endpoint = register(developer, "https://93.184.215.14/hooks")

    response = developer.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"url": "https://192.168.1.1/hooks"}
    )

    assert (response.status_code, response.json()["field"]) == (422, "url")
    shown = developer.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
    assert shown["url"] == "https://93.184.215.14/hooks"


def test_a_create_retried_with_its_idempotency_key_makes_no_twin_and_repeats_no_secret(
    api, receiver
):
    developer = api.developer()
    headers = {"Idempotency-Key": "endpoint-1"}

    first = developer.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=headers)
    again = developer.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == {**first.json(), "secret": None}
    assert len(developer.get("/v1/webhook-endpoints").json()["items"]) == 1


def test_an_endpoint_changes_its_types_and_description_and_is_disabled_and_enabled(api, receiver):
    developer = api.developer()
    endpoint = register(developer, receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['id']}"

    changed = developer.patch(
        path, json={"event_types": ["authorization.removed"], "description": "revocations"}
    ).json()
    disabled = developer.patch(path, json={"enabled": False}).json()
    enabled = developer.patch(path, json={"enabled": True}).json()

    assert (changed["event_types"], changed["description"]) == (
        ["authorization.removed"],
        "revocations",
    )
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "disabled by the app")
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)


def test_an_unknown_event_type_is_refused(api, receiver):
    developer = api.developer()

    response = developer.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["run.exploded"]}
    )

    assert (response.status_code, response.json()["field"]) == (422, "event_types.0")


def test_an_endpoint_failing_for_the_whole_window_shows_as_disabled_and_why(make_api, receiver):
    api = make_api(webhook_retry_window_seconds=1, webhook_retry_base_seconds=5)
    runtime = Runtime.from_settings(api.settings)
    developer = api.developer()
    endpoint = register(developer, receiver.url)
    receiver.respond(500)
    developer.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")

    assert deliver_published(api, runtime) == ["failed"]
    runtime.close()

    shown = developer.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
    assert shown["enabled"] is False
    assert "every attempt failed" in shown["disabled_reason"]
    assert "HTTP 500" in shown["disabled_reason"]
    (delivery,) = developer.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()[
        "items"
    ]
    assert (delivery["status"], delivery["response_code"]) == ("failed", 500)


def test_a_test_event_is_delivered_signed_and_its_delivery_shows_code_attempts_and_timing(
    api, runtime, receiver
):
    developer = api.developer()
    endpoint = register(developer, receiver.url)
    receiver.respond(503)

    queued = developer.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    assert deliver_published(api, runtime) == ["retry"]
    with runtime.engine.begin() as conn:  # the retry falls due now
        conn.exec_driver_sql("UPDATE webhook_deliveries SET next_attempt_at = now()")
    attempt_delivery(runtime, queued.json()["id"])

    assert (queued.status_code, queued.json()["status"], queued.json()["attempts"]) == (
        202,
        "pending",
        0,
    )
    (request,) = receiver.wait_for(1)
    payload = request.verified(endpoint["secret"])
    assert (payload["type"], payload["data"]["endpoint_id"]) == ("webhook.test", endpoint["id"])
    assert request.id == queued.json()["event_id"]
    (delivery,) = developer.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()[
        "items"
    ]
    assert {k: delivery[k] for k in ("status", "attempts", "response_code", "error")} == {
        "status": "succeeded",
        "attempts": 2,
        "response_code": 204,
        "error": None,
    }
    assert delivery["duration_ms"] is not None and delivery["finished_at"] is not None


def test_deliveries_are_filtered_by_status_and_paged_by_cursor(api, runtime, receiver):
    developer = api.developer()
    endpoint = register(developer, receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    for _ in range(3):
        developer.post(f"{path}/test")
    receiver.respond(500)
    deliver_published(api, runtime)

    first = developer.get(f"{path}/deliveries", params={"limit": 2}).json()
    second = developer.get(
        f"{path}/deliveries", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    pending = developer.get(f"{path}/deliveries", params={"status": "pending"}).json()

    ids = [d["id"] for d in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert second["next_cursor"] is None
    assert [d["response_code"] for d in pending["items"]] == [500]


def test_events_are_listed_newest_first_shown_and_paged_by_cursor(api, runtime):
    developer = api.developer()
    grants = [user_granted(api, developer) for _ in range(3)]

    first = developer.get("/v1/events", params={"limit": 2}).json()
    rest = developer.get("/v1/events", params={"cursor": first["next_cursor"]}).json()
    shown = developer.get(f"/v1/events/{first['items'][0]['id']}").json()

    events = first["items"] + rest["items"]
    assert [e["payload"]["data"]["authorization_id"] for e in events] == grants[::-1]
    assert {e["type"] for e in events} == {"authorization.created"}
    assert shown == first["items"][0]
    assert "user" in shown["payload"]["data"]  # the app's pseudonym, never the user's id
    assert rest["next_cursor"] is None


def test_a_redelivered_event_arrives_again_with_the_same_webhook_id(api, runtime, receiver):
    developer = api.developer()
    endpoint = register(developer, receiver.url, event_types=["authorization.created"])
    user_granted(api, developer)
    dispatch_events(runtime.settings, runtime.sessions, api.published.extend)
    deliver_published(api, runtime)
    (event,) = developer.get("/v1/events").json()["items"]

    response = developer.post(f"/v1/events/{event['id']}/redeliver", json={})
    deliver_published(api, runtime)

    assert response.status_code == 202
    assert [d["endpoint_id"] for d in response.json()["deliveries"]] == [endpoint["id"]]
    first, again = receiver.wait_for(2)
    assert first.id == again.id == event["id"]
    assert again.verified(endpoint["secret"]) == event["payload"]


def test_a_rotated_secret_is_shown_once_and_the_old_one_signs_until_the_overlap_ends(
    make_api, receiver
):
    api = make_api(webhook_secret_overlap_seconds=3600)
    runtime = Runtime.from_settings(api.settings)
    developer = api.developer()
    endpoint = register(developer, receiver.url)

    rotated = developer.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret").json()
    developer.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    deliver_published(api, runtime)
    runtime.close()

    (request,) = receiver.wait_for(1)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    assert request.verifies_with(endpoint["secret"]) and request.verifies_with(rotated["secret"])
    shown = developer.get(f"/v1/webhook-endpoints/{endpoint['id']}")
    assert rotated["secret"] not in shown.text


def test_a_deleted_endpoint_is_gone_with_its_deliveries(api, receiver):
    developer = api.developer()
    endpoint = register(developer, receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    developer.post(f"{path}/test")

    deleted = developer.delete(path)

    assert deleted.status_code == 204
    assert developer.get(path).status_code == 404
    assert developer.get(f"{path}/deliveries").status_code == 404


def test_no_signing_secret_appears_in_a_log_line(api, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    developer = api.developer()
    endpoint = register(developer, receiver.url)

    rotated = developer.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret").json()
    developer.get(f"/v1/webhook-endpoints/{endpoint['id']}")
    developer.post("/v1/webhook-endpoints", json={"url": receiver.url, "event_types": []})

    logged = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    assert endpoint["secret"] not in logged and rotated["secret"] not in logged
