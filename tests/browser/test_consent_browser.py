"""The consent flow in a real Chromium: an app starts it, the user signs in, reads the consent
page, allows (then a real worker delivers exactly the consented categories to SeaweedFS) or
denies; and the user revokes on the connected-apps page while a run is in flight."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import AppStatus, Authorization, Run
from portability.export import ExportHooks, execute_run
from portability.platform.seed import seed
from portability.registry import (
    add_destination,
    create_app,
    register_redirect_uri,
    set_app_status,
)
from portability.runs import create_run
from portability.runtime import Runtime
from portability.settings import Settings
from portability.web import create_web_app
from tests.browser._thirdparty import ThirdPartyApp
from tests.fixtures.web import IDENTITY_KEY
from tests.fixtures.workers import TEST_PSEUDONYM_KEY, wait_until

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.slow]

PREFIX = "exports"


@dataclass
class BrowserWorld:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    user_id: str
    app_id: int
    api_key: str
    destination_id: int
    bucket: str
    s3: object
    portal: str
    serve: object

    def third_party(self, api_key: str, scope: str) -> tuple[ThirdPartyApp, str]:
        app = ThirdPartyApp(self.portal, self.app_id, api_key, scope)
        return app, self.serve(app.asgi())  # type: ignore[operator]

    def object_keys(self) -> list[str]:
        listing = self.s3.client.list_objects_v2(Bucket=self.bucket)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in listing.get("Contents", []))


@pytest.fixture
def world(pg_url, worker_env, s3_endpoint, make_bucket, serve, tmp_path: Path):
    settings = Settings(
        data_dir=Path(worker_env["PORTABILITY_DATA_DIR"]),
        database_url=pg_url,
        encryption_key=worker_env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=TEST_PSEUDONYM_KEY,
        manifest_signing_keys=worker_env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
        allow_http_endpoints=True,
        allow_private_endpoints=True,
        web_dev_login=True,
        web_identity_key=IDENTITY_KEY,
        web_session_key="browser-session-secret-" + "b" * 32,
        export_batch_size=10,
        export_part_max_records=10,
        export_category_concurrency=1,
        retry_backoff_base=0.05,
        retry_backoff_max=0.2,
    )
    engine = make_engine(pg_url)
    user_id = seed(engine, users=1, records_per_user=60, seed=5, countries=["DE"]).user_ids[0]
    sessions = make_session_factory(engine)
    bucket = make_bucket(s3_endpoint)
    with sessions.begin() as session:
        app, api_key = create_app(
            session,
            name="Acme Backup",
            contact_email="dev@acme.example",
            use_case="Keeps a private backup of your posts and messages.",
        )
        set_app_status(session, app.id, AppStatus.APPROVED)
        register_redirect_uri(session, app.id, "http://127.0.0.1/callback")  # any port
        destination = add_destination(
            session,
            CredentialBox(settings.resolved_encryption_keys()),
            app_id=app.id,
            bucket=bucket,
            endpoint_url=s3_endpoint.endpoint_url,
            access_key_id=s3_endpoint.access_key_id,
            secret_access_key=s3_endpoint.secret_access_key,
            prefix=PREFIX,
            endpoint_policy=settings.endpoint_policy,
        )
        ids = app.id, destination.id
    portal = serve(create_web_app(settings, sessions=sessions))
    yield BrowserWorld(
        settings,
        engine,
        sessions,
        user_id,
        ids[0],
        api_key,
        ids[1],
        bucket,
        s3_endpoint,
        portal,
        serve,
    )
    engine.dispose()


def sign_in_and_see_consent(page, world: BrowserWorld, scope: str, shots) -> ThirdPartyApp:
    """The app's page -> Connect -> sign in (dev login) -> the consent page."""
    app, app_url = world.third_party(world.api_key, scope)
    page.goto(app_url)
    shots(page, "app-home")
    page.click("#connect")
    page.get_by_text("Sign in to continue").wait_for()
    shots(page, "sign-in-needed")
    page.get_by_role("link", name="Sign in as a test user").click()
    page.fill("#user_id", world.user_id)
    page.fill("#country", "DE")
    shots(page, "dev-login")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").wait_for()
    return app


def status_of(world: BrowserWorld, run_id: int) -> str:
    with world.engine.connect() as conn:
        return str(
            conn.execute(text("SELECT status FROM runs WHERE id = :i"), {"i": run_id}).scalar_one()
        )


def test_allowing_gives_the_app_the_grant_and_a_worker_delivers_only_those_categories(
    page, world, shots, start_worker, worker_env
):
    app = sign_in_and_see_consent(
        page, world, "portability.posts.single portability.directmessages.single", shots
    )
    body = page.inner_text("main")
    assert "Acme Backup asks for a copy of your data" in body
    assert "Keeps a private backup of your posts and messages." in body
    assert "Posts" in body and "Direct messages" in body
    assert "Activity" not in body and "Profile\n" not in body
    assert "One time: a single copy of your data as it is now" in body
    assert "revoke this at any time" in body
    shots(page, "consent")

    page.get_by_role("button", name="Allow").click()
    page.get_by_text("Connected").wait_for()
    shots(page, "app-connected")
    [answer] = app.results
    assert answer["scope"] == "portability.directmessages.single portability.posts.single"
    assert (answer["access"], answer["expires_at"]) == ("single", None)

    with world.sessions.begin() as session:
        run_id = create_run(
            session,
            app_id=None,
            authorization_id=answer["authorization_id"],
            destination_id=world.destination_id,
            categories="posts,direct_messages",
        ).id
    start_worker()
    from workers.app import EXPORT_TASK, create_app

    create_app(
        Settings(data_dir=world.settings.data_dir, broker_url=worker_env["PORTABILITY_BROKER_URL"])
    ).send_task(EXPORT_TASK, args=[run_id])
    wait_until(
        lambda: status_of(world, run_id) in {"succeeded", "failed", "cancelled"},
        timeout=90,
        what=f"run {run_id} to finish",
    )
    assert status_of(world, run_id) == "succeeded"

    folders = {tuple(key.split("/")[1:3]) for key in world.object_keys()}
    assert folders == {(answer["user"], "posts"), (answer["user"], "direct_messages")}

    page.goto(f"{world.portal}/account/apps")
    apps = page.inner_text("main")
    with world.engine.connect() as conn:
        sent = dict(
            conn.execute(
                text("SELECT category, records FROM run_categories WHERE run_id = :r"),
                {"r": run_id},
            ).all()
        )
    assert "Acme Backup: Posts, Direct messages" in apps and "used once" in apps
    assert f"Posts: {sent['posts']} records, Direct messages: {sent['direct_messages']} " in apps
    shots(page, "connected-apps-after-delivery")


def test_denying_sends_the_app_access_denied_and_grants_nothing(page, world, shots):
    app = sign_in_and_see_consent(page, world, "portability.all.ongoing", shots)
    body = page.inner_text("main")
    assert "Ongoing access" in body and "until I revoke it" in body
    for name in ("Profile", "Posts", "Activity", "Direct messages"):
        assert name in body
    shots(page, "consent")
    for _ in range(40):  # the keyboard alone reaches the Deny button
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Deny":
            break
    else:
        raise AssertionError("Tab never reached the Deny button")
    page.keyboard.press("Enter")
    page.get_by_text("Not connected").wait_for()
    shots(page, "app-denied")
    assert app.results == [{"error": "access_denied"}]
    with world.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Authorization)) == 0


def test_revoking_on_the_connected_apps_page_stops_a_run_in_flight(page, world, shots):
    app = sign_in_and_see_consent(page, world, "portability.all.ongoing", shots)
    page.get_by_label("for 30 days").check()
    shots(page, "consent")
    page.get_by_role("button", name="Allow").click()
    page.get_by_text("Connected").wait_for()
    authorization_id = app.results[0]["authorization_id"]

    with world.sessions.begin() as session:
        run_id = create_run(
            session,
            app_id=None,
            authorization_id=authorization_id,
            destination_id=world.destination_id,
            categories="all",
        ).id
    paused, resume = threading.Event(), threading.Event()

    def pause_once(_category: str) -> None:
        if not paused.is_set():
            paused.set()
            resume.wait(timeout=60)

    runtime = Runtime.from_settings(world.settings)
    outcome: list[object] = []
    export = threading.Thread(
        target=lambda: outcome.append(
            execute_run(runtime, run_id, hooks=ExportHooks(between_batches=pause_once))
        )
    )
    export.start()
    try:
        assert paused.wait(timeout=60), "the export never reached its first batch"
        page.goto(f"{world.portal}/account/apps")
        apps = page.inner_text("main")
        assert "Acme Backup" in apps and "Ongoing" in apps
        shots(page, "connected-apps")
        page.get_by_role("button", name="Revoke Acme Backup's access").click()
        page.get_by_text("You revoked Acme Backup's access").wait_for()
        shots(page, "revoked")
    finally:
        resume.set()
        export.join(timeout=60)
        runtime.close()

    with world.sessions() as session:
        run = session.get(Run, run_id)
        assert (run.status, run.failure_reason) == ("cancelled", "consent")
        assert "user revoked on the connected apps page" in run.last_error
    assert not [key for key in world.object_keys() if "/manifests/" in key]
