""" "Download your data" in a real Chromium (JavaScript off): the user signs in, chooses two
categories, requests a copy, watches the page refresh itself until a real worker (fed by a
real beat) has written the archive to SeaweedFS, downloads it and opens the ZIP."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from portability.categories import Category
from portability.db.engine import make_engine, make_session_factory
from portability.platform.seed import seed
from portability.settings import Settings
from portability.sources.sql import SqlChangeFeed
from portability.web import create_web_app
from tests.fixtures.platform import read_state
from tests.fixtures.user_exports import export_settings, verify_manifest
from tests.fixtures.web import IDENTITY_KEY
from tests.fixtures.workers import TEST_PSEUDONYM_KEY

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def download_world(pg_url, worker_env, s3_endpoint, make_bucket, serve, start_worker, start_beat):
    base = Settings(
        data_dir=Path(worker_env["PORTABILITY_DATA_DIR"]),
        database_url=pg_url,
        encryption_key=worker_env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=TEST_PSEUDONYM_KEY,
        manifest_signing_keys=worker_env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
        web_dev_login=True,
        web_identity_key=IDENTITY_KEY,
        web_session_key="browser-session-secret-" + "d" * 32,
    )
    settings = export_settings(base, s3_endpoint, make_bucket(s3_endpoint))
    env = {
        **worker_env,
        "PORTABILITY_USER_EXPORT_ENDPOINT_URL": s3_endpoint.endpoint_url,
        "PORTABILITY_USER_EXPORT_BUCKET": settings.user_export_bucket or "",
        "PORTABILITY_USER_EXPORT_ACCESS_KEY_ID": s3_endpoint.access_key_id,
        "PORTABILITY_USER_EXPORT_SECRET_ACCESS_KEY": s3_endpoint.secret_access_key,
        "PORTABILITY_USER_EXPORT_HOUSEKEEPING_SECONDS": "0.5",
        "PORTABILITY_EXPORT_BATCH_SIZE": "10",
    }
    engine = make_engine(pg_url)
    user_id = seed(engine, users=1, records_per_user=80, seed=7, countries=["DE"]).user_ids[0]
    start_worker("-Q", "portability.user_exports", env=env, name="user-exports")
    start_beat(env=env)
    portal = serve(create_web_app(settings, sessions=make_session_factory(engine)))
    yield portal, user_id, engine
    engine.dispose()


def test_the_user_requests_waits_for_ready_downloads_and_opens_the_zip(
    page, download_world, shots, tmp_path
):
    portal, user_id, engine = download_world
    page.goto(f"{portal}/account/download")
    page.get_by_role("link", name="Sign in as a test user").click()
    page.fill("#user_id", user_id)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Download your data").wait_for()
    shots(page, "download-page")

    page.get_by_label("Posts").check()
    page.get_by_label("Direct messages").check()
    page.get_by_label("JSON").check()
    page.get_by_role("button", name="Request a copy").click()
    page.get_by_text("Your copy is being prepared").wait_for()
    shots(page, "requested")

    link = page.locator("a[download]")
    link.wait_for(timeout=90_000)  # the page refreshes itself until the copy is ready
    shots(page, "ready")
    assert "ready" in page.inner_text("main")
    with page.expect_download() as started:
        link.click()
    saved = tmp_path / started.value.suggested_filename
    started.value.save_as(saved)

    volume = zipfile.ZipFile(saved)
    verify_manifest([volume])
    assert sorted(volume.namelist()) == [
        "README.txt",
        "direct_messages.jsonl",
        "manifest.json",
        "posts.jsonl",
    ]
    source = SqlChangeFeed(engine)
    for category in (Category.POSTS, Category.DIRECT_MESSAGES):
        lines, _ = read_state(source, user_id, category)
        assert volume.read(f"{category.value}.jsonl").decode().splitlines() == lines
