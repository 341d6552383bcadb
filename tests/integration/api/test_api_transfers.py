"""One-time transfers, schedules and runs through the API; enqueued only after the commit."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from portability.db.engine import make_engine
from portability.pseudonyms import pseudonym
from tests.fixtures.api import give_grant

pytestmark = pytest.mark.services

PROBLEMS = "https://portability.example/problems/"


def transfer(world, **overrides):
    body = {"grant_id": world.grant_id, "destination_id": world.destination_id, **overrides}
    return world.developer.post("/v1/transfers", json=body)


def test_a_transfer_of_all_categories_queues_a_run_of_the_grants_categories_and_enqueues_it(
    world, api_settings
):
    response = transfer(world)
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["status"], run["grant_id"], run["categories"]) == (
        "queued",
        world.grant_id,
        ["activity", "direct_messages", "posts", "profile"],
    )
    assert world.api.enqueued == [run["id"]]
    engine = make_engine(api_settings)
    with engine.connect() as conn:  # committed before it was published
        assert conn.execute(text("SELECT status FROM runs")).scalar_one() == "queued"
    engine.dispose()


def test_a_run_reads_back_exactly_as_its_transfer_answered(world):
    created = transfer(world).json()
    assert world.developer.get(f"/v1/runs/{created['id']}").json() == created


def test_a_transfer_of_a_subset_sends_only_that_subset(world):
    response = transfer(world, categories=["posts", "profile"])
    assert response.json()["categories"] == ["posts", "profile"]


def test_a_transfer_of_categories_the_grant_lacks_is_refused_naming_the_field(world):
    api = world.api
    narrow = give_grant(api, world.developer.app_id, world.user_id, categories=["posts"])
    response = transfer(world, grant_id=narrow, categories=["direct_messages"])
    problem = response.json()
    assert (response.status_code, problem["field"]) == (422, "categories")
    assert api.enqueued == []


def test_a_transfer_of_an_unknown_category_is_refused(world):
    response = transfer(world, categories=["contacts"])
    assert (response.status_code, response.json()["field"]) == (422, "categories")


def test_a_transfer_of_a_revoked_grant_is_refused_by_consent(world):
    assert world.api.platform.post(f"/internal/grants/{world.grant_id}/revoke").status_code == 200
    response = transfer(world)
    assert (response.status_code, response.json()["type"]) == (403, PROBLEMS + "consent-refused")
    assert "revoked" in response.json()["detail"]


def test_a_schedule_shows_its_next_run_time_and_state(world):
    developer = world.developer
    response = developer.post(
        "/v1/schedules",
        json={
            "grant_id": world.grant_id,
            "destination_id": world.destination_id,
            "categories": ["posts"],
            "cron": "0 3 * * *",
            "timezone": "Europe/Berlin",
        },
    )
    assert response.status_code == 201, response.text
    schedule = developer.get(f"/v1/schedules/{response.json()['id']}").json()
    assert (schedule["state"], schedule["cron"], schedule["timezone"]) == (
        "active",
        "0 3 * * *",
        "Europe/Berlin",
    )
    assert schedule["next_run_at"] is not None
    assert [s["id"] for s in developer.get("/v1/schedules").json()["items"]] == [schedule["id"]]


@pytest.mark.parametrize(
    ("field", "value"), [("cron", "every day"), ("cron", "* * * * *"), ("timezone", "Mars/Base")]
)
def test_a_schedule_with_a_bad_cron_or_zone_is_refused_naming_the_field(world, field, value):
    body = {"grant_id": world.grant_id, "destination_id": world.destination_id, "cron": "@daily"}
    response = world.developer.post("/v1/schedules", json={**body, field: value})
    assert (response.status_code, response.json()["field"]) == (422, field)


def test_a_schedule_on_a_single_use_grant_is_refused(world):
    single = give_grant(world.api, world.developer.app_id, world.user_id, access="single")
    response = world.developer.post(
        "/v1/schedules",
        json={"grant_id": single, "destination_id": world.destination_id, "cron": "@daily"},
    )
    assert (response.status_code, response.json()["field"]) == (422, "grant_id")
    assert "single-use" in response.json()["detail"]


def test_a_schedule_pauses_resumes_runs_now_and_is_deleted(world):
    developer = world.developer
    created = developer.post(
        "/v1/schedules",
        json={"grant_id": world.grant_id, "destination_id": world.destination_id, "cron": "@daily"},
    ).json()
    path = f"/v1/schedules/{created['id']}"
    assert developer.post(f"{path}/pause").json()["state"] == "paused"
    assert developer.post(f"{path}/resume").json()["state"] == "active"

    run = developer.post(f"{path}/run")
    assert run.status_code == 201
    assert (run.json()["schedule_id"], world.api.enqueued) == (created["id"], [run.json()["id"]])

    assert developer.delete(path).status_code == 204
    assert developer.get(path).status_code == 404
    assert developer.post(f"{path}/run").status_code == 404
    assert developer.get(f"/v1/runs/{run.json()['id']}").status_code == 200


def test_runs_are_listed_by_status_schedule_grant_and_time(world):
    developer = world.developer
    first = transfer(world).json()
    second = transfer(world, categories=["posts"]).json()
    developer.post(f"/v1/runs/{first['id']}/cancel")

    def ids(**params):
        response = developer.get("/v1/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert ids() == [second["id"], first["id"]]
    assert ids(status="cancelled") == [first["id"]]
    assert ids(status="queued") == [second["id"]]
    assert ids(grant_id=world.grant_id) == [second["id"], first["id"]]
    assert ids(grant_id=world.grant_id + 1000) == []
    assert ids(schedule_id=1) == []
    assert ids(queued_after=second["queued_at"]) == [second["id"]]
    assert ids(queued_before=second["queued_at"]) == [first["id"]]


def test_a_run_shows_per_category_results_failure_reason_and_message(world, api_settings):
    run = transfer(world, categories=["posts"]).json()
    engine = make_engine(api_settings)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO run_categories (run_id, run_queued_at, category, status, records,"
                " bytes, parts, sequence, manifest_key) SELECT id, queued_at, 'posts', 'done',"
                " 7, 900, 1, 1, 'exports/u/posts/manifest-00000001.json' FROM runs WHERE id = :r"
            ),
            {"r": run["id"]},
        )
        conn.execute(
            text(
                "UPDATE runs SET status = 'failed', failure_reason = 'destination_permanent',"
                " last_error = 'access denied: give the key s3:PutObject' WHERE id = :r"
            ),
            {"r": run["id"]},
        )
    engine.dispose()
    shown = world.developer.get(f"/v1/runs/{run['id']}").json()
    assert (shown["status"], shown["failure_reason"], shown["message"]) == (
        "failed",
        "destination_permanent",
        "access denied: give the key s3:PutObject",
    )
    assert shown["per_category"] == [
        {
            "category": "posts",
            "status": "done",
            "records": 7,
            "bytes": 900,
            "parts": 1,
            "sequence": 1,
            "manifest_key": "exports/u/posts/manifest-00000001.json",
        }
    ]


def test_a_queued_run_is_cancelled_once_and_a_finished_one_is_a_conflict(world):
    run = transfer(world).json()
    cancelled = world.developer.post(f"/v1/runs/{run['id']}/cancel")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = world.developer.post(f"/v1/runs/{run['id']}/cancel")
    assert (again.status_code, again.json()["type"]) == (409, PROBLEMS + "conflict")


def test_grants_list_and_show_what_the_app_holds(world):
    developer = world.developer
    listed = developer.get("/v1/grants").json()["items"]
    shown = developer.get(f"/v1/grants/{world.grant_id}").json()
    assert [g["id"] for g in listed] == [world.grant_id]
    key = world.api.settings.resolved_pseudonym_key()
    assert {k: shown[k] for k in ("user_pseudonym", "access", "state", "categories")} == {
        "user_pseudonym": pseudonym(key, developer.app_id, world.user_id),
        "access": "ongoing",
        "state": "active",
        "categories": ["activity", "direct_messages", "posts", "profile"],
    }
    assert shown["streams"] == []  # nothing delivered yet


def test_a_grant_never_shows_the_developer_the_platforms_user_id(world):
    listed = world.developer.get("/v1/grants").text
    shown = world.developer.get(f"/v1/grants/{world.grant_id}").text

    assert world.user_id not in listed and world.user_id not in shown


def test_a_grants_streams_and_a_requested_replay_show_on_the_grant(world, api_settings):
    engine = make_engine(api_settings)
    with engine.begin() as conn:  # a stream that has delivered once
        conn.execute(
            text(
                "INSERT INTO streams (authorization_id, destination_id, category, position,"
                " sequence, planned_sequence, last_manifest_key, updated_at)"
                " VALUES (:g, :d, 'posts', '5:5:', 1, 1, 'exports/x/posts/g1/m', now())"
            ),
            {"g": world.grant_id, "d": world.destination_id},
        )
    engine.dispose()

    asked = world.developer.post(f"/v1/grants/{world.grant_id}/replay", json={"category": "posts"})
    shown = world.developer.get(f"/v1/grants/{world.grant_id}").json()

    assert (asked.status_code, len(asked.json()["streams"])) == (202, 1)
    assert [(s["category"], s["sequence"], s["replay_pending"]) for s in shown["streams"]] == [
        ("posts", 1, "requested")
    ]


def test_another_apps_grant_cannot_be_replayed(world):
    other = world.api.developer()

    response = other.post(f"/v1/grants/{world.grant_id}/replay", json={})

    assert response.status_code == 404


def test_the_manifest_signing_keys_are_published(world):
    keys = world.developer.get("/v1/manifest-keys").json()

    assert [k["alg"] for k in keys] == ["ed25519"]
    assert keys[0]["key_id"] and keys[0]["public_key"]


def test_pages_walk_every_item_once_and_a_forged_cursor_is_refused(world):
    developer = world.developer
    made = [transfer(world).json()["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = developer.get("/v1/runs", params=params).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)
    response = developer.get("/v1/runs", params={"cursor": "not-a-cursor"})
    assert (response.status_code, response.json()["field"]) == (422, "cursor")


def test_a_misspelt_filter_is_refused_instead_of_ignored(world):
    response = world.developer.get("/v1/runs", params={"stauts": "failed"})
    assert (response.status_code, response.json()["field"]) == (422, "stauts")
    assert "status" in response.json()["detail"]


def test_an_app_registers_the_redirect_uris_its_consent_requests_may_use(world):
    developer = world.developer

    created = developer.post("/v1/redirect-uris", json={"uri": "https://app.example/callback"})
    again = developer.post("/v1/redirect-uris", json={"uri": "https://app.example/callback"})
    plain = developer.post("/v1/redirect-uris", json={"uri": "http://app.example/callback"})
    listed = developer.get("/v1/redirect-uris").json()

    assert (created.status_code, again.json()["id"]) == (201, created.json()["id"])
    assert plain.status_code == 422
    assert [u["uri"] for u in listed] == ["https://app.example/callback"]
    assert world.api.developer().get("/v1/redirect-uris").json() == []  # another app's are apart
