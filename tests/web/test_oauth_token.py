"""The token endpoint through HTTP: code + PKCE verifier for the grant, and every refusal as
RFC 6749 section 5.2 and RFC 7636 section 4.6 prescribe."""

from __future__ import annotations

import base64

from portability.db.models import Authorization
from portability.pseudonyms import Pseudonymizer
from tests.fixtures.web import REDIRECT_URI, make_verifier


def error_of(response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    return response.json()["error"]


def grant_row(web, authorization_id: int) -> Authorization:
    with web.world.sessions() as session:
        row = session.get(Authorization, authorization_id)
        session.expunge(row)
        return row


def test_the_code_and_its_verifier_give_the_grant_the_pseudonym_the_scope_and_expiry(
    web, web_settings
):
    web.sign_in()
    response = web.exchange(web.code(expiry="90"))
    assert response.status_code == 200, response.text
    body = response.json()
    pseudonym = Pseudonymizer(
        web_settings.resolved_pseudonym_key(), web.world.app_id, "alice"
    ).owner_pseudonym
    assert body == {
        "authorization_id": body["authorization_id"],
        "user": pseudonym,
        "scope": "portability.posts.ongoing portability.profile.ongoing",
        "categories": ["posts", "profile"],
        "access": "ongoing",
        "granted_at": "2026-12-07T10:00:00+00:00",
        "expires_at": "2027-03-07T10:00:00+00:00",
    }
    assert response.headers["cache-control"] == "no-store"


def test_client_secret_basic_authenticates_the_app(web):
    web.sign_in()
    code = web.code()
    basic = base64.b64encode(f"{web.world.app_id}:{web.world.api_key}".encode()).decode()
    response = web.http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": web.verifier,
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text


def test_client_secret_post_authenticates_the_app(web):
    web.sign_in()
    code = web.code()
    response = web.http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": web.verifier,
            "client_id": str(web.world.app_id),
            "client_secret": web.world.api_key,
        },
    )
    assert response.status_code == 200, response.text


def test_a_missing_code_verifier_is_invalid_request(web):
    web.sign_in()
    response = web.exchange(web.code(), code_verifier=None)
    assert (response.status_code, error_of(response)) == (400, "invalid_request")


def test_a_wrong_code_verifier_is_invalid_grant(web):
    web.sign_in()
    response = web.exchange(web.code(), code_verifier=make_verifier())
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")


def test_a_code_used_twice_is_invalid_grant_and_revokes_the_grant(web):
    web.sign_in()
    code = web.code()
    first = web.exchange(code)
    assert first.status_code == 200
    second = web.exchange(code)
    assert (second.status_code, error_of(second)) == (400, "invalid_grant")
    grant = grant_row(web, first.json()["authorization_id"])
    assert grant.revoked_at is not None
    assert grant.revoke_reason == "its authorization code was presented twice"


def test_a_code_is_consumed_by_a_failed_attempt(web):
    web.sign_in()
    code = web.code()
    web.exchange(code, code_verifier=make_verifier())
    response = web.exchange(code)
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")


def test_a_code_older_than_60_seconds_is_invalid_grant(web, clock):
    web.sign_in()
    code = web.code()
    clock.advance(seconds=60)
    response = web.exchange(code)
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")
    assert "expired" in response.json()["error_description"]


def test_a_code_at_59_seconds_is_still_good(web, clock):
    web.sign_in()
    code = web.code()
    clock.advance(seconds=59)
    assert web.exchange(code).status_code == 200


def test_another_apps_code_is_invalid_grant(web):
    web.sign_in()
    response = web.exchange(web.code(), api_key=web.world.other_api_key)
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")


def test_a_client_id_that_is_not_the_api_keys_app_is_invalid_client(web):
    web.sign_in()
    response = web.exchange(web.code(), client_id=str(web.world.other_app_id))
    assert (response.status_code, error_of(response)) == (401, "invalid_client")


def test_an_unknown_api_key_is_invalid_client_with_a_basic_challenge(web):
    basic = base64.b64encode(b"1:pk_not-a-key").decode()
    response = web.http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": "x"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert (response.status_code, error_of(response)) == (401, "invalid_client")
    assert response.headers["www-authenticate"] == 'Basic realm="portability"'


def test_no_client_authentication_is_invalid_client(web):
    response = web.http.post("/oauth/token", data={"grant_type": "authorization_code"})
    assert (response.status_code, error_of(response)) == (401, "invalid_client")


def test_two_authentication_methods_at_once_are_invalid_request(web):
    response = web.exchange("x", client_secret=web.world.api_key)
    assert (response.status_code, error_of(response)) == (400, "invalid_request")


def test_a_redirect_uri_other_than_the_codes_is_invalid_grant(web):
    web.sign_in()
    response = web.exchange(web.code(), redirect_uri="https://acme.example/other")
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")


def test_another_grant_type_is_unsupported_grant_type(web):
    response = web.exchange("x", grant_type="client_credentials")
    assert (response.status_code, error_of(response)) == (400, "unsupported_grant_type")


def test_a_made_up_code_is_invalid_grant(web):
    response = web.exchange("not-a-code")
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")


def test_a_code_whose_grant_the_user_revoked_meanwhile_is_invalid_grant(web):
    from portability.registry import revoke_grant

    web.sign_in()
    code = web.code()
    with web.world.sessions.begin() as session:
        grant = session.query(Authorization).one()
        revoke_grant(session, grant.id)
    response = web.exchange(code)
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")
