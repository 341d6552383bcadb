"""The pages around the flow: headers that forbid framing on every response, CSRF on every
form, signing in by assertion or (demo only) by dev login, and connected apps with Revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portability.db.models import Authorization, PlatformUser, Schedule
from portability.web import create_web_app
from tests.fixtures.web import asgi_client, assertion, csrf_of


def framing_headers(response) -> tuple[str, bool]:
    csp = response.headers["content-security-policy"]
    return response.headers["x-frame-options"], "frame-ancestors 'none'" in csp


@pytest.mark.parametrize(
    "path",
    [
        "/oauth/authorize?client_id=1",  # error page
        "/oauth/authorize",  # no client
        "/account/apps",
        "/dev/login",
        "/session",
    ],
)
def test_every_page_forbids_framing(web, path):
    web.sign_in()
    response = web.http.get(path)
    assert framing_headers(response) == ("DENY", True), path


def test_the_consent_page_and_the_token_answer_forbid_framing(web):
    web.sign_in()
    assert framing_headers(web.consent_page()) == ("DENY", True)
    assert framing_headers(web.exchange("x")) == ("DENY", True)


def test_the_consent_page_lets_its_form_go_only_here_and_to_the_apps_origin(web):
    web.sign_in()
    csp = web.consent_page().headers["content-security-policy"]
    assert "form-action 'self' https://acme.example;" in csp
    assert "script-src" not in csp and "default-src 'none'" in csp


def test_the_session_cookie_is_secure_httponly_and_samesite_lax(web):
    response = web.http.post("/session", data={"assertion": assertion("alice", "DE")})
    cookie = response.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_an_assertion_signed_with_another_key_signs_nobody_in(web):
    response = web.http.post("/session", data={"assertion": assertion("alice", "DE", key="x" * 48)})
    assert response.status_code == 401
    assert "signed in as" not in web.http.get("/account/apps").text


def test_an_unsigned_assertion_is_refused(web):
    token = jwt.encode({"sub": "alice", "country": "DE"}, key=None, algorithm="none")
    assert web.http.post("/session", data={"assertion": token}).status_code == 401


def test_an_assertion_records_the_country_the_platform_vouches_for(web):
    web.http.post("/session", data={"assertion": assertion("alice", "FR")})
    with web.world.sessions() as session:
        assert session.get(PlatformUser, "alice").country == "FR"


def test_after_signing_in_the_user_goes_only_to_a_path_here(web):
    response = web.http.post(
        "/session", data={"assertion": assertion("alice", "DE"), "next": "//evil.example/x"}
    )
    assert response.headers["location"] == "/account/apps"


def test_an_eddsa_assertion_verified_with_the_platforms_public_key(web_settings, consent_world):
    private = Ed25519PrivateKey.generate()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = web_settings.model_copy(
        update={
            "web_identity_algorithm": "EdDSA",
            "web_identity_key": web_settings_secret(public_pem),
        }
    )
    now = datetime.now(UTC)
    token = jwt.encode(
        {
            "sub": "carol",
            "country": "NL",
            "aud": "portability-consent",
            "iat": now,
            "exp": now + timedelta(minutes=2),
        },
        private,
        algorithm="EdDSA",
    )
    with asgi_client(create_web_app(settings, sessions=consent_world.sessions)) as http:
        assert http.post("/session", data={"assertion": token}).status_code == 303
        assert "signed in as <strong>carol</strong>" in http.get("/account/apps").text


def web_settings_secret(value: str):
    from pydantic import SecretStr

    return SecretStr(value)


def test_dev_login_is_off_by_default_and_no_banner_shows(web_settings, consent_world):
    from portability.settings import Settings

    assert Settings.model_fields["web_dev_login"].default is False
    settings = web_settings.model_copy(update={"web_dev_login": False})
    with asgi_client(create_web_app(settings, sessions=consent_world.sessions)) as http:
        assert http.get("/dev/login").status_code == 404
        assert "Demo mode" not in http.get("/account/apps").text


def test_dev_login_when_on_says_so_on_every_page_and_signs_in(web):
    page = web.http.get("/dev/login?next=/account/apps")
    assert "Demo mode" in page.text
    response = web.http.post(
        "/dev/login",
        data={"csrf_token": csrf_of(page.text), "user_id": "dave", "country": "at"},
    )
    assert response.status_code == 303
    apps = web.http.get("/account/apps")
    assert "signed in as <strong>dave</strong>" in apps.text and "Demo mode" in apps.text


def test_dev_login_without_its_csrf_token_is_refused(web):
    response = web.http.post("/dev/login", data={"user_id": "dave", "country": "DE"})
    assert response.status_code == 403


def add_schedule(web, authorization_id: int) -> int:
    from portability.registry import create_schedule

    destination_id = session_destination(web)
    with web.world.sessions.begin() as session:
        return create_schedule(
            session,
            app_id=web.world.app_id,
            authorization_id=authorization_id,
            destination_id=destination_id,
            categories="posts",
            cron="0 * * * *",
        ).id


def record_delivery(web, authorization_id: int, counts: dict[str, int], at: datetime) -> None:
    """What a finished run leaves behind: its per-category results and the streams' times."""
    from portability.db.models import Run, RunCategory, Stream

    destination_id = session_destination(web)
    with web.world.sessions.begin() as session:
        run = Run(
            app_id=web.world.app_id,
            authorization_id=authorization_id,
            destination_id=destination_id,
            categories=",".join(counts),
            status="succeeded",
        )
        session.add(run)
        session.flush()
        for category, records in counts.items():
            session.add(
                RunCategory(
                    run_id=run.id,
                    run_queued_at=run.queued_at,
                    category=category,
                    status="done",
                    records=records,
                )
            )
            session.add(
                Stream(
                    authorization_id=authorization_id,
                    destination_id=destination_id,
                    category=category,
                    last_delivered_at=at,
                )
            )


def session_destination(web) -> int:
    from portability.crypto import CredentialBox
    from portability.registry import add_destination

    with web.world.sessions.begin() as session:
        return add_destination(
            session,
            CredentialBox([b"x" * 43 + b"="]),
            app_id=web.world.app_id,
            bucket="acme-delivered",
            access_key_id="k",
            secret_access_key="s",
        ).id


def test_connected_apps_shows_a_new_grant_with_its_access_and_nothing_sent_yet(web):
    web.sign_in()
    web.exchange(web.code(expiry="never"))
    page = web.http.get("/account/apps")
    assert page.status_code == 200
    for wanted in ("Acme Backup", "Profile, Posts", "Ongoing, until you revoke it", "nothing yet"):
        assert wanted in page.text, wanted


def test_connected_apps_shows_the_last_delivery_and_records_per_category(web):
    web.sign_in()
    authorization_id = web.exchange(web.code(expiry="30")).json()["authorization_id"]
    record_delivery(
        web,
        authorization_id,
        {"posts": 120, "profile": 1},
        datetime(2026, 12, 7, 10, 15, tzinfo=UTC),
    )
    page = web.http.get("/account/apps").text
    assert "Ongoing, 6 January 2027, 10:00 UTC" in page
    assert "Last sent</dt><dd>7 December 2026, 10:15 UTC" in page
    assert "<li>Posts: 120 records</li>" in page and "<li>Profile: 1 record</li>" in page


def test_revoke_revokes_the_grant_and_disables_its_schedules(web):
    web.sign_in()
    authorization_id = web.exchange(web.code()).json()["authorization_id"]
    schedule_id = add_schedule(web, authorization_id)
    page = web.http.get("/account/apps")
    response = web.http.post(
        f"/account/apps/{authorization_id}/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303
    with web.world.sessions() as session:
        assert session.get(Authorization, authorization_id).revoked_at is not None
        assert session.get(Schedule, schedule_id).next_run_at is None
    after = web.http.get(response.headers["location"])
    assert "You revoked Acme Backup" in after.text and "No longer connected" in after.text


def test_revoke_without_its_csrf_token_is_refused_and_revokes_nothing(web):
    web.sign_in()
    authorization_id = web.exchange(web.code()).json()["authorization_id"]
    response = web.http.post(f"/account/apps/{authorization_id}/revoke", data={})
    assert response.status_code == 403
    with web.world.sessions() as session:
        assert session.get(Authorization, authorization_id).revoked_at is None


def test_a_user_cannot_revoke_another_users_grant(web):
    web.sign_in()
    authorization_id = web.exchange(web.code()).json()["authorization_id"]
    web.sign_in("erin", "DE")
    page = web.http.get("/account/apps")
    response = web.http.post(
        f"/account/apps/{authorization_id}/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 404
    with web.world.sessions() as session:
        assert session.get(Authorization, authorization_id).revoked_at is None
