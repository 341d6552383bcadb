"""What the registry adds for the consent flow: redirect URIs, users' countries, and grants
only to approved apps."""

from __future__ import annotations

import pytest

from portability.db.models import PlatformUser
from portability.errors import ValidationError
from portability.registry import grant, register_redirect_uri, upsert_user


def test_a_grant_to_an_app_staff_have_not_approved_is_refused(consent_world):
    with consent_world.sessions() as session, pytest.raises(ValidationError, match="pending"):
        grant(
            session,
            user_id="alice",
            app_id=consent_world.pending_app_id,
            categories="posts",
            access="single",
            eligible_countries={"DE"},
        )


def test_registering_a_redirect_uri_twice_keeps_one(consent_world):
    with consent_world.sessions.begin() as session:
        first = register_redirect_uri(session, consent_world.app_id, "https://acme.example/two")
        again = register_redirect_uri(session, consent_world.app_id, "https://acme.example/two")
        assert first.id == again.id


def test_a_plain_http_redirect_uri_cannot_be_registered(consent_world):
    with consent_world.sessions() as session, pytest.raises(ValidationError, match="https"):
        register_redirect_uri(session, consent_world.app_id, "http://acme.example/cb")


def test_upsert_user_records_a_new_country(consent_world):
    with consent_world.sessions.begin() as session:
        upsert_user(session, user_id="bob", country="se")
        upsert_user(session, user_id="frank", country="IE")
    with consent_world.sessions() as session:
        assert session.get(PlatformUser, "bob").country == "SE"
        assert session.get(PlatformUser, "frank").country == "IE"
