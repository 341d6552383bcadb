"""The internal API's "download your data" on PostgreSQL, with the archive in SeaweedFS: what
it writes matches the platform store, the links download over HTTP, and the guards hold."""

from __future__ import annotations

import threading

import pytest

from portability.categories import Category
from portability.runtime import Runtime
from portability.user_exports.run import run_user_export
from tests.fixtures.s3 import create_bucket
from tests.fixtures.user_exports import export_settings, files_of, verify_manifest

pytestmark = pytest.mark.services


@pytest.fixture
def platform_api(make_api, api_settings, s3_endpoint):
    """The API with an export bucket in SeaweedFS; ``alice`` (DE) has 300 seeded records."""
    from portability.platform.seed import seed

    settings = export_settings(api_settings, s3_endpoint, create_bucket(s3_endpoint))
    api = make_api(
        **{
            k: v
            for k, v in settings.model_dump().items()
            if k.startswith(("user_export", "export_batch"))
        }
    )
    runtime = Runtime.from_settings(api.settings)
    user_id = seed(runtime.engine, users=1, records_per_user=300, countries=["DE"]).user_ids[0]
    yield api, runtime, user_id
    runtime.engine.dispose()


def test_an_export_of_two_categories_through_the_internal_api_matches_the_store(platform_api):
    api, runtime, user_id = platform_api
    base = f"/internal/users/{user_id}/exports"
    response = api.platform.post(base, json={"categories": ["posts", "direct_messages"]})
    assert response.status_code == 201, response.text
    export_id = response.json()["id"]
    assert response.json()["status"] == "queued"

    assert run_user_export(runtime, export_id).status == "ready"

    shown = api.platform.get(f"{base}/{export_id}").json()
    listed = api.platform.get(base).json()["items"]
    assert [e["id"] for e in listed] == [export_id]
    assert shown["status"] == "ready" and shown["size_bytes"] > 0 and shown["volumes"] == 1
    links = api.platform.post(f"{base}/{export_id}/links").json()["links"]
    assert [link["filename"] for link in links] == [f"your-data-{export_id}.zip"]

    import io
    import zipfile

    import httpx

    body = httpx.get(links[0]["url"], timeout=30)
    assert body.status_code == 200
    volume = zipfile.ZipFile(io.BytesIO(body.content))
    manifest = verify_manifest([volume])
    files = files_of([volume])
    assert sorted(files) == ["README.txt", "direct_messages.jsonl", "manifest.json", "posts.jsonl"]
    from tests.fixtures.platform import read_state

    for category in (Category.POSTS, Category.DIRECT_MESSAGES):
        lines, _ = read_state(runtime.source, user_id, category)
        assert files[f"{category.value}.jsonl"].decode().splitlines() == lines
    assert manifest["records"] == shown["records"]


def test_two_concurrent_requests_for_one_user_give_one_export_and_a_clear_refusal(platform_api):
    api, _runtime, user_id = platform_api
    barrier = threading.Barrier(2)
    answers = []

    def ask() -> None:
        barrier.wait()
        answers.append(api.platform.post(f"/internal/users/{user_id}/exports", json={}))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [201, 409]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert "one export at a time per user" in refused["detail"]


def test_another_users_export_id_is_not_found_on_every_route(platform_api):
    api, _runtime, user_id = platform_api
    assert api.platform.put("/internal/users/mallory1", json={"country": "FR"}).status_code == 201
    export_id = api.platform.post(f"/internal/users/{user_id}/exports", json={}).json()["id"]
    other = f"/internal/users/mallory1/exports/{export_id}"
    assert api.platform.get(other).status_code == 404
    assert api.platform.post(f"{other}/links").status_code == 404
    assert api.platform.post(f"{other}/cancel").status_code == 404
    assert api.platform.delete(other).status_code == 404
    mine = api.platform.get(f"/internal/users/{user_id}/exports/{export_id}").json()
    assert mine["status"] == "queued"


def test_cancel_then_delete_through_the_api(platform_api):
    api, _runtime, user_id = platform_api
    base = f"/internal/users/{user_id}/exports"
    export_id = api.platform.post(base, json={"categories": ["profile"], "format": "text"}).json()[
        "id"
    ]
    assert api.platform.post(f"{base}/{export_id}/cancel").json()["status"] == "cancelled"
    again = api.platform.post(f"{base}/{export_id}/cancel")
    assert again.status_code == 409 and "only a queued or running export" in again.json()["detail"]
    assert api.platform.post(f"{base}/{export_id}/links").status_code == 409
    assert api.platform.delete(f"{base}/{export_id}").status_code == 204
    assert api.platform.get(f"{base}/{export_id}").json()["status"] == "deleted"


def test_the_exports_routes_need_the_service_token(platform_api):
    api, _runtime, user_id = platform_api
    assert api.client.get(f"/internal/users/{user_id}/exports").status_code == 401


def test_a_request_while_no_export_bucket_is_set_is_refused_with_the_reason(api):
    assert api.platform.put("/internal/users/carol1", json={"country": "DE"}).status_code == 201
    refused = api.platform.post("/internal/users/carol1/exports", json={})
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/downloads-unavailable")
    assert "PORTABILITY_USER_EXPORT_BUCKET" in refused.json()["detail"]
