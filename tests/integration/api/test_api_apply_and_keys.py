"""Applying for access, and the API keys: shown once, hashed, rotated with overlap, revoked."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from portability.db.engine import make_engine
from portability.db.models import AppStatus
from tests.fixtures.workers import wait_until

pytestmark = pytest.mark.services

PROBLEMS = "https://portability.example/problems/"


@pytest.mark.parametrize(
    ("use_case", "why"),
    [
        ("", "empty"),
        ("test", "placeholder"),
        ("Lorem ipsum", "placeholder"),
        ("We want the data please", "too short"),
    ],
)
def test_apply_refuses_an_empty_or_boilerplate_use_case_saying_why(api, use_case, why):
    response = api.client.post(
        "/v1/apps", json={"name": "Acme", "contact_email": "a@b.io", "use_case": use_case}
    )
    body = response.json()
    assert (response.status_code, body["type"], body["field"]) == (
        422,
        PROBLEMS + "validation-error",
        "use_case",
    )
    assert why in body["detail"]
    assert response.headers["content-type"] == "application/problem+json"


def test_apply_returns_a_pending_app_and_its_key_once_stored_only_hashed(api, api_settings):
    developer = api.apply()
    assert developer.api_key.startswith(developer.key_id + "_")
    engine = make_engine(api_settings)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT key_id, secret_hash FROM api_keys")).all()
        apps = conn.execute(text("SELECT status FROM apps")).scalars().all()
    engine.dispose()
    assert apps == ["pending"]
    assert [row.key_id for row in stored] == [developer.key_id]
    assert developer.api_key not in repr(stored)


@pytest.mark.parametrize(
    "call",
    [
        ("get", "/v1/runs"),
        ("get", "/v1/apps/me"),
        ("post", "/v1/keys"),
        ("get", "/v1/destinations/1"),
        ("post", "/v1/transfers"),
    ],
)
def test_a_pending_app_gets_403_awaiting_review_on_every_other_call(api, call):
    developer = api.apply()
    method, path = call
    response = getattr(developer, method)(path)
    assert (response.status_code, response.json()["type"]) == (403, PROBLEMS + "awaiting-review")
    assert "awaiting review" in response.json()["detail"]


def test_a_suspended_app_is_refused_as_not_approved(api):
    developer = api.developer()
    api.set_status(developer.app_id, AppStatus.SUSPENDED)
    response = developer.get("/v1/runs")
    assert (response.status_code, response.json()["type"]) == (403, PROBLEMS + "app-not-approved")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer pk_000000000000_nope", "Basic abc"])
def test_a_missing_or_bad_key_gets_401_with_a_bearer_challenge(api, header):
    headers = {"Authorization": header} if header else {}
    response = api.client.get("/v1/runs", headers=headers)
    assert (response.status_code, response.json()["type"]) == (401, PROBLEMS + "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_key_listing_shows_key_ids_and_states_never_keys(api):
    developer = api.developer()
    response = developer.get("/v1/keys")
    assert response.status_code == 200
    assert [(k["key_id"], k["state"]) for k in response.json()["items"]] == [
        (developer.key_id, "active")
    ]
    assert developer.api_key not in response.text


def test_a_rotated_out_key_works_during_the_overlap_then_stops(make_api):
    api = make_api(api_key_overlap_seconds=2, api_key_cache_seconds=30)
    old = api.developer()
    assert old.get("/v1/runs").status_code == 200  # now in the process's key cache
    rotated = old.post("/v1/keys")
    assert rotated.status_code == 201, rotated.text
    new = type(old)(old.client, old.app_id, rotated.json()["api_key"], rotated.json()["key_id"])

    assert old.get("/v1/runs").status_code == 200
    assert new.get("/v1/runs").status_code == 200
    states = {k["key_id"]: k["state"] for k in new.get("/v1/keys").json()["items"]}
    assert states == {old.key_id: "expiring", new.key_id: "active"}
    wait_until(lambda: old.get("/v1/runs").status_code == 401, timeout=10, what="old key to stop")
    assert new.get("/v1/runs").status_code == 200


def test_a_revoked_key_stops_at_once_even_when_cached(make_api):
    api = make_api(api_key_cache_seconds=30)
    old = api.developer()
    rotated = old.post("/v1/keys").json()
    new = type(old)(old.client, old.app_id, rotated["api_key"], rotated["key_id"])
    assert old.get("/v1/runs").status_code == 200

    response = new.post(f"/v1/keys/{old.key_id}/revoke")
    assert (response.status_code, response.json()["state"]) == (200, "revoked")
    assert old.get("/v1/runs").status_code == 401
    assert new.get("/v1/runs").status_code == 200


def test_the_last_working_key_cannot_be_revoked(api):
    developer = api.developer()
    response = developer.post(f"/v1/keys/{developer.key_id}/revoke")
    assert (response.status_code, response.json()["type"]) == (409, PROBLEMS + "conflict")
    assert developer.get("/v1/runs").status_code == 200


def test_another_apps_key_id_cannot_be_revoked(api):
    ours, theirs = api.developer("ours"), api.developer("theirs")
    ours.post("/v1/keys")
    response = ours.post(f"/v1/keys/{theirs.key_id}/revoke")
    assert response.status_code == 404
    assert theirs.get("/v1/runs").status_code == 200


def test_an_approval_takes_effect_on_the_next_call(api):
    developer = api.apply()
    assert developer.get("/v1/runs").status_code == 403
    api.set_status(developer.app_id, AppStatus.APPROVED)
    assert developer.get("/v1/runs").status_code == 200
