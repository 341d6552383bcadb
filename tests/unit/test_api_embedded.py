"""The API on the embedded default (SQLite, no server): what `portability api` serves alone."""

from __future__ import annotations

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from portability.api import create_app
from portability.settings import Settings
from tests.fixtures.api import SERVICE_TOKEN, ApiHarness


def test_a_transfer_is_created_and_shown_on_the_embedded_default(sqlite_url, tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        encryption_key=Fernet.generate_key().decode(),
        api_service_token=SERVICE_TOKEN,
        web_session_key="test-web-session-key-" + "s" * 32,
        pseudonym_key="test-pseudonym-key-" + "p" * 32,
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )
    enqueued: list[int] = []
    app = create_app(settings, enqueue=enqueued.extend, probe=lambda _config: None)
    with TestClient(app) as client:
        api = ApiHarness(client, settings, enqueued)
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
        destination = developer.post(
            "/v1/destinations",
            json={"bucket": "my-bucket", "access_key_id": "k", "secret_access_key": "s"},
        ).json()
        created = developer.post(
            "/v1/transfers", json={"grant_id": grant["id"], "destination_id": destination["id"]}
        ).json()
        shown = developer.get(f"/v1/runs/{created['id']}")

    assert shown.status_code == 200
    assert shown.json() == created
    assert shown.json()["queued_at"].endswith("Z")
    assert enqueued == [created["id"]]
