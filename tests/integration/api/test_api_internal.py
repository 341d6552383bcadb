"""The platform's internal endpoints: users and their countries, consents, revocations."""

from __future__ import annotations

import pytest

from tests.fixtures.api import Developer

pytestmark = pytest.mark.services

PROBLEMS = "https://portability.example/problems/"


def consent(api, **overrides):
    body = {"user_id": "u1", "app_id": 1, "categories": ["posts"], "access": "ongoing"}
    return api.platform.post("/internal/grants", json={**body, **overrides})


def test_internal_endpoints_refuse_an_app_key_and_a_wrong_token(api):
    developer = api.developer()
    as_app = Developer(api.client, 0, developer.api_key, "x")
    wrong = Developer(api.client, 0, "svc-wrong", "x")
    for caller in (as_app, wrong):
        response = caller.put("/internal/users/u1", json={"country": "DE"})
        assert (response.status_code, response.json()["type"]) == (401, PROBLEMS + "unauthorized")


def test_internal_endpoints_are_off_without_a_service_token(make_api):
    api = make_api(api_service_token=None)
    response = api.platform.put("/internal/users/u1", json={"country": "DE"})
    assert response.status_code == 401
    assert "PORTABILITY_API_SERVICE_TOKEN" in response.json()["detail"]


def test_a_user_is_created_then_updated(api):
    created = api.platform.put("/internal/users/u1", json={"country": "de"})
    updated = api.platform.put("/internal/users/u1", json={"country": "FR"})
    assert (created.status_code, created.json()["country"]) == (201, "DE")
    assert (updated.status_code, updated.json()["country"]) == (200, "FR")


def test_a_consent_of_an_eea_user_to_an_approved_app_becomes_a_grant(api):
    developer = api.developer()
    api.platform.put("/internal/users/u1", json={"country": "NO"})
    response = consent(api, app_id=developer.app_id, expires_at="2099-01-01T00:00:00Z")
    assert response.status_code == 201, response.text
    grant = response.json()
    assert (grant["app_id"], grant["categories"], grant["state"]) == (
        developer.app_id,
        ["posts"],
        "active",
    )
    assert developer.get(f"/v1/grants/{grant['id']}").status_code == 200


def test_a_consent_of_a_non_eea_user_is_refused(api):
    developer = api.developer()
    api.platform.put("/internal/users/u1", json={"country": "US"})
    response = consent(api, app_id=developer.app_id)
    assert (response.status_code, response.json()["type"]) == (403, PROBLEMS + "consent-refused")
    assert "EEA" in response.json()["detail"]


def test_a_consent_to_an_app_awaiting_review_is_refused(api):
    pending = api.apply()
    api.platform.put("/internal/users/u1", json={"country": "DE"})
    response = consent(api, app_id=pending.app_id)
    assert (response.status_code, response.json()["type"]) == (403, PROBLEMS + "consent-refused")
    assert "pending" in response.json()["detail"]


def test_a_consent_to_an_unknown_category_or_user_is_refused(api):
    developer = api.developer()
    api.platform.put("/internal/users/u1", json={"country": "DE"})
    unknown_category = consent(api, app_id=developer.app_id, categories=["contacts"])
    unknown_user = consent(api, app_id=developer.app_id, user_id="nobody")
    assert (unknown_category.status_code, unknown_category.json()["field"]) == (422, "categories")
    assert unknown_user.status_code == 404


def test_a_revoked_grant_stops_its_schedules_and_is_listed_as_revoked(world):
    api, developer = world.api, world.developer
    schedule = developer.post(
        "/v1/schedules",
        json={"grant_id": world.grant_id, "destination_id": world.destination_id, "cron": "@daily"},
    ).json()
    revoked = api.platform.post(
        f"/internal/grants/{world.grant_id}/revoke", json={"reason": "user clicked remove"}
    )
    assert (revoked.status_code, revoked.json()["state"]) == (200, "revoked")
    shown = developer.get(f"/v1/schedules/{schedule['id']}").json()
    assert shown["state"] == "disabled"
    assert "user clicked remove" in shown["disabled_reason"]
    resumed = developer.post(f"/v1/schedules/{schedule['id']}/resume")
    assert resumed.status_code == 409

    listed = api.platform.get(f"/internal/users/{world.user_id}/grants").json()["items"]
    assert [(g["id"], g["state"]) for g in listed] == [(world.grant_id, "revoked")]


def test_the_grants_of_an_unknown_user_are_not_found(api):
    assert api.platform.get("/internal/users/nobody/grants").status_code == 404


def test_an_empty_service_token_turns_the_internal_api_off_rather_than_accepting_empty(make_api):
    api = make_api(api_service_token="")
    response = api.client.put(
        "/internal/users/u1", json={"country": "DE"}, headers={"Authorization": "Bearer "}
    )
    assert response.status_code == 401


def test_a_deleted_user_has_every_grant_revoked_once_and_cannot_grant_again(world):
    api, developer = world.api, world.developer
    schedule = developer.post(
        "/v1/schedules",
        json={"grant_id": world.grant_id, "destination_id": world.destination_id, "cron": "@daily"},
    ).json()

    deleted = api.platform.delete(f"/internal/users/{world.user_id}")
    again = api.platform.delete(f"/internal/users/{world.user_id}")
    regrant = consent(api, user_id=world.user_id, app_id=developer.app_id)
    recreate = api.platform.put(f"/internal/users/{world.user_id}", json={"country": "DE"})

    assert (deleted.status_code, deleted.json()["grants_revoked"]) == (200, 1)
    assert (again.status_code, again.json()["grants_revoked"]) == (200, 0)
    assert again.json()["deleted_at"] == deleted.json()["deleted_at"]
    assert developer.get(f"/v1/grants/{world.grant_id}").json()["state"] == "revoked"
    assert developer.get(f"/v1/schedules/{schedule['id']}").json()["state"] == "disabled"
    assert (regrant.status_code, regrant.json()["type"]) == (403, PROBLEMS + "consent-refused")
    assert (recreate.status_code, recreate.json()["type"]) == (409, PROBLEMS + "conflict")
    assert api.platform.delete("/internal/users/nobody").status_code == 404
