"""The consent flow's pure rules: scopes, redirect URIs (RFC 6749 3.1.2, RFC 8252) and PKCE
(RFC 7636), without HTTP or a database."""

from __future__ import annotations

import pytest

from portability.categories import Category
from portability.db.models import Access
from portability.errors import OAuthError, ValidationError
from portability.oauth import check_redirect_uri, matches_registered, parse_scope, s256
from portability.oauth._pkce import check_challenge, verify


def test_scopes_name_categories_and_one_access():
    request = parse_scope("portability.directmessages.single portability.posts.single")
    assert request.categories == {Category.DIRECT_MESSAGES, Category.POSTS}
    assert request.access is Access.SINGLE
    assert request.scope == "portability.directmessages.single portability.posts.single"


def test_the_all_scope_expands_to_every_category():
    assert parse_scope("portability.all.ongoing").categories == frozenset(Category)


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "portability.contacts.single",
        "portability.posts.forever",
        "portability.direct_messages.single",
        "openid",
        "portability.posts.single.extra",
    ],
)
def test_unknown_scopes_are_invalid_scope(scope):
    with pytest.raises(OAuthError) as raised:
        parse_scope(scope)
    assert raised.value.error == "invalid_scope"


def test_scopes_that_mix_access_are_invalid_scope():
    with pytest.raises(OAuthError, match="mix single and ongoing"):
        parse_scope("portability.posts.single portability.profile.ongoing")


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/callback",
        "https://app.example/cb?tenant=7",
        "http://127.0.0.1/callback",
        "http://[::1]:8080/callback",
    ],
)
def test_https_and_loopback_redirect_uris_may_be_registered(uri):
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://app.example/callback", "must use https"),
        ("http://localhost:8080/cb", "loopback address"),
        ("https://app.example/cb#frag", "fragment"),
        ("https://user:pw@app.example/cb", "user info"),
        ("/callback", "absolute"),
        ("javascript:alert(1)", "absolute"),
        ("https://app.example/a b", "spaces"),
    ],
)
def test_other_redirect_uris_are_refused_saying_why(uri, why):
    with pytest.raises(ValidationError, match=why):
        check_redirect_uri(uri)


def test_redirect_uris_match_exactly():
    registered = ["https://app.example/callback"]
    assert matches_registered("https://app.example/callback", registered)
    assert not matches_registered("https://app.example/callback/", registered)
    assert not matches_registered("https://app.example/callback?x=1", registered)
    assert not matches_registered("https://APP.example/callback", registered)


def test_a_loopback_redirect_uri_matches_on_any_port_but_nothing_else():
    registered = ["http://127.0.0.1/callback"]
    assert matches_registered("http://127.0.0.1:51234/callback", registered)
    assert not matches_registered("http://127.0.0.1:51234/other", registered)
    assert not matches_registered("http://[::1]:51234/callback", registered)


def test_s256_matches_the_rfc_7636_example():
    assert (
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_a_verifier_is_checked_against_its_challenge():
    verifier = "a" * 43
    verify(verifier, s256(verifier))
    with pytest.raises(OAuthError) as raised:
        verify("b" * 43, s256(verifier))
    assert raised.value.error == "invalid_grant"


def test_a_too_short_verifier_is_invalid_grant():
    with pytest.raises(OAuthError) as raised:
        verify("short", s256("short"))
    assert raised.value.error == "invalid_grant"


def test_a_malformed_challenge_is_invalid_request():
    with pytest.raises(OAuthError) as raised:
        check_challenge("not-43-characters", "S256")
    assert raised.value.error == "invalid_request"
