"""The authorization endpoint through HTTP: each RFC 6749 / RFC 7636 check gets the answer the
RFCs prescribe (a page when the redirect URI is not verified, a redirect with the error and
the state once it is), and the user's decision."""

from __future__ import annotations

from sqlalchemy import func, select

from portability.db.models import Authorization
from tests.fixtures.web import REDIRECT_URI, hidden_fields, query_of


def grants(web) -> int:
    with web.world.sessions() as session:
        return session.scalar(select(func.count()).select_from(Authorization))


def test_consent_page_names_the_app_its_use_the_categories_and_the_access(web):
    web.sign_in()
    page = web.consent_page()
    assert page.status_code == 200
    for text in (
        "Acme Backup",
        "Keeps a private backup of your posts and profile.",
        "Posts",
        "Profile",
        "Ongoing access",
        "storage that Acme Backup runs itself",
        "revoke this at any time",
    ):
        assert text in page.text, text
    assert "Direct messages" not in page.text


def test_one_time_scope_says_one_time(web):
    web.sign_in()
    page = web.consent_page(scope="portability.directmessages.single")
    assert "One time:" in page.text and "Direct messages" in page.text


def test_an_unregistered_redirect_uri_gets_a_page_and_no_redirect(web):
    web.sign_in()
    page = web.consent_page(redirect_uri="https://evil.example/callback")
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "not one that Acme Backup registered" in page.text


def test_a_missing_redirect_uri_gets_a_page(web):
    page = web.consent_page(redirect_uri=None)
    assert page.status_code == 400 and "location" not in page.headers


def test_an_unknown_client_id_gets_a_page(web):
    page = web.consent_page(client_id="99999")
    assert page.status_code == 400 and "location" not in page.headers
    assert "no app has the client_id" in page.text


def test_a_repeated_redirect_uri_gets_a_page(web):
    url = "/oauth/authorize?" + "&".join(
        [f"redirect_uri={REDIRECT_URI}", f"redirect_uri={REDIRECT_URI}", "client_id=1"]
    )
    page = web.http.get(url)
    assert page.status_code == 400 and "location" not in page.headers


def test_an_unapproved_app_gets_a_page_and_no_redirect(web):
    web.sign_in()
    page = web.consent_page(client_id=str(web.world.pending_app_id))
    assert page.status_code == 400 and "location" not in page.headers
    assert "not approved" in page.text


def test_a_user_outside_the_eea_gets_a_page_and_no_redirect(web):
    web.sign_in("bob", "US")
    page = web.consent_page()
    assert page.status_code == 403 and "location" not in page.headers
    assert "not available in your country" in page.text


def test_an_unknown_scope_goes_back_to_the_app_as_invalid_scope_with_the_state(web):
    web.sign_in()
    response = web.consent_page(scope="portability.contacts.single")
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT_URI + "?")
    query = query_of(response.headers["location"])
    assert (query["error"], query["state"]) == ("invalid_scope", "xyz-state")


def test_mixed_single_and_ongoing_scopes_are_invalid_scope(web):
    response = web.consent_page(scope="portability.posts.single portability.profile.ongoing")
    assert query_of(response.headers["location"])["error"] == "invalid_scope"


def test_a_missing_code_challenge_is_invalid_request(web):
    response = web.consent_page(code_challenge=None)
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_the_plain_challenge_method_is_refused(web):
    response = web.consent_page(code_challenge_method="plain")
    assert query_of(response.headers["location"])["error"] == "invalid_request"


def test_another_response_type_is_unsupported_response_type(web):
    response = web.consent_page(response_type="token")
    assert query_of(response.headers["location"])["error"] == "unsupported_response_type"


def test_a_signed_out_user_is_asked_to_sign_in(web):
    page = web.consent_page()
    assert page.status_code == 200
    assert "Sign in to continue" in page.text and "/dev/login?next=" in page.text


def test_allow_redirects_with_a_code_and_the_state_and_records_the_grant(web):
    web.sign_in()
    response = web.decide("allow", expiry="30")
    assert response.status_code == 303
    query = query_of(response.headers["location"])
    assert set(query) == {"code", "state"} and query["state"] == "xyz-state"
    with web.world.sessions() as session:
        grant = session.scalars(select(Authorization)).one()
        assert (grant.user_id, grant.categories, grant.access) == (
            "alice",
            "posts,profile",
            "ongoing",
        )
        assert grant.expires_at is not None


def test_deny_redirects_with_access_denied_and_records_nothing(web):
    web.sign_in()
    response = web.decide("deny")
    assert response.status_code == 303
    query = query_of(response.headers["location"])
    assert (query["error"], query["state"]) == ("access_denied", "xyz-state")
    assert grants(web) == 0


def test_a_decision_posted_without_its_csrf_token_is_refused(web):
    web.sign_in()
    form = web.authorize_params() | {"decision": "allow"}
    response = web.http.post("/oauth/authorize", data=form)
    assert response.status_code == 403 and "location" not in response.headers
    assert grants(web) == 0


def test_a_decision_whose_redirect_uri_was_altered_is_checked_again(web):
    web.sign_in()
    form = hidden_fields(web.consent_page().text)
    form |= {"decision": "allow", "redirect_uri": "https://evil.example/cb"}
    response = web.http.post("/oauth/authorize", data=form)
    assert response.status_code == 400 and "location" not in response.headers
    assert grants(web) == 0
