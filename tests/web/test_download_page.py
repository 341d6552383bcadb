"""``/account/download`` through HTTP in process: request with CSRF, progress without
JavaScript, download links while ready, expired shown as such, and only the user's own."""

from __future__ import annotations

import re

import httpx
import pytest

from portability.runtime import Runtime
from portability.user_exports import UserExport, user_export_housekeeping
from portability.user_exports.run import run_user_export
from portability.web import create_web_app
from tests.fixtures.s3 import create_bucket
from tests.fixtures.user_exports import export_settings
from tests.fixtures.web import WebClient, asgi_client, csrf_of


@pytest.fixture
def page_world(web_settings, consent_world, clock, sqlite_url, moto_endpoint):
    settings = export_settings(
        web_settings, moto_endpoint, create_bucket(moto_endpoint), database_url=sqlite_url
    )
    runtime = Runtime.from_settings(settings)
    app = create_web_app(settings, sessions=consent_world.sessions, clock=clock)
    with asgi_client(app) as http:
        yield WebClient(http, consent_world), runtime
    runtime.engine.dispose()


def ask(web: WebClient, *fields: tuple[str, str], csrf: str | None = None) -> httpx.Response:
    token = csrf if csrf is not None else csrf_of(web.http.get("/account/download").text)
    form: dict[str, list[str]] = {"csrf_token": [token]}
    for name, value in fields:
        form.setdefault(name, []).append(value)
    return web.http.post("/account/download", data=form)


def export_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="export-(\d+)"', html)]


def test_signed_out_the_page_asks_to_sign_in(page_world):
    web, _ = page_world
    page = web.http.get("/account/download")
    assert page.status_code == 200 and "Sign in to continue" in page.text


def test_requesting_shows_the_export_with_its_progress_and_a_refresh_that_needs_no_script(
    page_world,
):
    web, _ = page_world
    web.sign_in("alice")
    response = ask(web, ("categories", "posts"), ("categories", "profile"), ("format", "json"))
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/account/download?done=requested",
    )
    page = web.http.get("/account/download").text
    assert '<meta http-equiv="refresh" content="3">' in page
    assert 'href="/account/download">Refresh now' in page
    assert 'data-status="queued"' in page and "Profile, Posts (JSON)" in page
    assert "<script" not in page


def test_a_request_without_the_forms_token_is_refused(page_world):
    web, _ = page_world
    web.sign_in("alice")
    response = ask(web, ("categories", "all"), csrf="forged")
    assert response.status_code == 403 and export_ids(web.http.get("/account/download").text) == []


def test_choosing_nothing_says_what_to_choose(page_world):
    web, _ = page_world
    web.sign_in("alice")
    response = ask(web, ("format", "json"))
    assert response.status_code == 422 and "Choose at least one kind of data" in response.text


def test_a_second_request_while_one_runs_is_refused_with_the_reason(page_world):
    web, _ = page_world
    web.sign_in("alice")
    ask(web, ("categories", "all"))
    again = ask(web, ("categories", "posts"))
    assert again.status_code == 409 and "one export at a time per user" in again.text


def test_a_ready_export_has_download_links_and_an_expired_one_is_shown_as_expired(
    page_world, clock
):
    web, runtime = page_world
    web.sign_in("alice")
    ask(web, ("categories", "all"), ("format", "text"))
    [export_id] = export_ids(web.http.get("/account/download").text)
    assert run_user_export(runtime, export_id).status == "ready"

    page = web.http.get("/account/download").text
    assert 'data-status="ready"' in page and "<meta http-equiv" not in page
    [url] = re.findall(r'<a href="([^"]+)" download="your-data-\d+\.zip"', page)
    download = httpx.get(url.replace("&amp;", "&"), timeout=30)
    assert download.status_code == 200 and download.content[:2] == b"PK"

    with runtime.sessions() as session:
        row_expiry = session.get(UserExport, export_id).expires_at
    user_export_housekeeping(runtime.settings, runtime.sessions, lambda ids: None, now=row_expiry)
    page = web.http.get("/account/download").text
    assert 'data-status="expired"' in page and "Its files were deleted" in page
    assert "download=" not in page


def test_another_users_export_cannot_be_cancelled_or_deleted(page_world):
    web, _ = page_world
    web.sign_in("alice")
    ask(web, ("categories", "all"))
    [export_id] = export_ids(web.http.get("/account/download").text)
    web.sign_in("bob")
    csrf = csrf_of(web.http.get("/account/download").text)
    for action in ("cancel", "delete"):
        response = web.http.post(
            f"/account/download/{export_id}/{action}", data={"csrf_token": csrf}
        )
        assert response.status_code == 404 and "not one of yours" in response.text
    assert export_ids(web.http.get("/account/download").text) == []


def test_the_user_cancels_an_export_in_progress(page_world):
    web, _ = page_world
    web.sign_in("alice")
    ask(web, ("categories", "all"))
    page = web.http.get("/account/download").text
    [export_id] = export_ids(page)
    response = web.http.post(
        f"/account/download/{export_id}/cancel", data={"csrf_token": csrf_of(page)}
    )
    assert response.status_code == 303
    assert 'data-status="cancelled"' in web.http.get("/account/download").text


def test_any_country_may_download(page_world):
    web, _ = page_world
    web.sign_in("bob", country="US")
    assert ask(web, ("categories", "all")).status_code == 303
