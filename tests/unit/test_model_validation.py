"""Bad input is refused before it is stored, with a ``ValidationError`` that names the problem."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from portability import registry
from portability.categories import EEA_COUNTRIES, parse_categories
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import (
    Access,
    AppStatus,
    Authorization,
    Destination,
    Schedule,
    Stream,
)
from portability.errors import ValidationError
from portability.platform.store import write_changes
from tests.fixtures.platform import make_record


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(sqlite_db: Engine) -> sessionmaker[Session]:
    return make_session_factory(sqlite_db)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session, session.begin():
        yield session


@pytest.fixture
def box() -> CredentialBox:
    return CredentialBox(Fernet.generate_key())


@dataclass
class World:
    app_id: int
    grant_id: int
    destination_id: int


@pytest.fixture
def world(session: Session, box: CredentialBox) -> World:
    """An approved app, an EEA user granting it posts + profile, and one destination."""
    app, _key = registry.create_app(
        session, name="Clip Archive", contact_email="dev@example.com", use_case="Backs up posts."
    )
    registry.set_app_status(session, app.id, AppStatus.APPROVED)
    registry.add_user(session, user_id="u000001", country="DE")
    grant = registry.grant(
        session,
        user_id="u000001",
        app_id=app.id,
        categories=["posts", "profile"],
        access=Access.ONGOING,
        eligible_countries=EEA_COUNTRIES,
    )
    destination = registry.add_destination(
        session,
        box,
        app_id=app.id,
        bucket="clip-archive",
        access_key_id="AKIA",
        secret_access_key="secret",
    )
    return World(app_id=app.id, grant_id=grant.id, destination_id=destination.id)


# -- categories ------------------------------------------------------------------------------


def test_category_outside_the_four_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"unknown category 'videos'"):
        parse_categories("posts,videos")


def test_empty_category_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="no categories given"):
        parse_categories(" , ")


def test_grant_with_unknown_category_is_refused() -> None:
    with pytest.raises(ValidationError, match="'messages'"):
        Authorization(categories="posts,messages")


def test_checkpoint_with_unknown_category_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown category 'likes'"):
        Stream(category="likes")


# -- schedules -------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "every day", "0 0 31 2 *"])
def test_cron_expression_croniter_rejects_is_refused(cron: str) -> None:
    with pytest.raises(ValidationError, match="cron"):
        Schedule(cron=cron)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"unknown time zone 'Mars/Olympus_Mons'"):
        Schedule(timezone="Mars/Olympus_Mons")


def test_schedule_wider_than_its_grant_is_refused(session: Session, world: World) -> None:
    with pytest.raises(ValidationError, match=r"direct_messages .*not in authorization"):
        registry.create_schedule(
            session,
            app_id=world.app_id,
            authorization_id=world.grant_id,
            destination_id=world.destination_id,
            categories=["posts", "direct_messages"],
        )


def test_recurring_schedule_on_a_single_use_grant_is_refused(
    session: Session, world: World
) -> None:
    single = registry.grant(
        session,
        user_id="u000001",
        app_id=world.app_id,
        categories="posts",
        access=Access.SINGLE,
        eligible_countries=EEA_COUNTRIES,
    )
    with pytest.raises(ValidationError, match="single-use"):
        registry.create_schedule(
            session,
            app_id=world.app_id,
            authorization_id=single.id,
            destination_id=world.destination_id,
            categories="posts",
            cron="0 3 * * *",
        )


# -- grants ----------------------------------------------------------------------------------


def test_user_outside_the_eea_cannot_grant(session: Session, world: World) -> None:
    registry.add_user(session, user_id="u000002", country="US")
    with pytest.raises(ValidationError, match=r"u000002 is in US: only users in .*DE"):
        registry.grant(
            session,
            user_id="u000002",
            app_id=world.app_id,
            categories="posts",
            access=Access.SINGLE,
            eligible_countries=EEA_COUNTRIES,
        )


def test_unknown_access_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="access 'forever' must be 'single' or 'ongoing'"):
        Authorization(access="forever")


def test_grant_expiring_in_the_past_is_refused(session: Session, world: World) -> None:
    from datetime import UTC, datetime

    with pytest.raises(ValidationError, match="is not in the future"):
        registry.grant(
            session,
            user_id="u000001",
            app_id=world.app_id,
            categories="posts",
            access=Access.ONGOING,
            eligible_countries=EEA_COUNTRIES,
            expires_at=datetime(2000, 1, 1, tzinfo=UTC),
        )


@pytest.mark.parametrize(
    ("user_id", "country", "problem"),
    [
        ("has space", "DE", "user id 'has space'"),
        ("x" * 65, "DE", "must be 1-64 characters"),
        ("u000009", "Germany", "country 'Germany' is not an ISO 3166-1"),
        ("u000009", "D1", "country 'D1'"),
        ("u000009", "\u0414\u0415", "country '\u0414\u0415' is not an ISO"),  # Cyrillic
        ("u000009", "XX", "country 'XX' is not an ISO"),
    ],
)
def test_bad_platform_user_is_refused(
    session: Session, user_id: str, country: str, problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        registry.add_user(session, user_id=user_id, country=country)


# -- apps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.com", "sp ace@x.io"])
def test_bad_contact_email_is_refused(session: Session, email: str) -> None:
    with pytest.raises(ValidationError, match="is not an email address"):
        registry.create_app(session, name="App", contact_email=email, use_case="Backs up posts.")


def test_vague_use_case_is_refused(session: Session) -> None:
    with pytest.raises(ValidationError, match="use case"):
        registry.create_app(session, name="App", contact_email="a@example.com", use_case="x")


def test_blank_app_name_is_refused(session: Session) -> None:
    with pytest.raises(ValidationError, match="app name must not be empty"):
        registry.create_app(
            session, name="  ", contact_email="a@example.com", use_case="Backs up posts."
        )


# -- destinations ----------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["Bad_Bucket", "ab", "-leading-dash", "x" * 64, "UPPER"])
def test_bad_bucket_name_is_refused(bucket: str) -> None:
    with pytest.raises(ValidationError, match="bucket name"):
        Destination(bucket=bucket)


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("exports/../secrets", "must not contain '..'"),
        ("..", "must not contain '..'"),
        ("/absolute/path", "must not start with '/'"),
        ("back\\slash", "forbidden character"),
    ],
)
def test_unsafe_destination_prefix_is_refused(prefix: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Destination(prefix=prefix)


def test_endpoint_without_http_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="must start with http"):
        Destination(endpoint_url="s3.example.com")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("addressing_style", "sideways", "addressing style 'sideways'"),
        ("server_side_encryption", "rot13", "server-side encryption 'rot13'"),
        ("compression", "bzip2", "compression 'bzip2'"),
    ],
)
def test_unknown_destination_option_is_refused(field: str, value: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Destination(**{field: value})


def test_destination_without_credentials_is_refused(
    session: Session, world: World, box: CredentialBox
) -> None:
    with pytest.raises(ValidationError, match="secret access key"):
        registry.add_destination(
            session,
            box,
            app_id=world.app_id,
            bucket="clip-archive",
            access_key_id="AKIA",
            secret_access_key="",
        )


def test_bad_encryption_key_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match="not a valid Fernet key"):
        CredentialBox(b"too-short")


# -- platform store --------------------------------------------------------------------------


@pytest.mark.parametrize("record_id", ["has space", "slash/id", "", "x" * 65, "dot.id"])
def test_bad_record_id_is_refused(sqlite_db: Engine, record_id: str) -> None:
    with pytest.raises(ValidationError, match="record id"), sqlite_db.begin() as conn:
        write_changes(
            conn,
            "u000001",
            "posts",
            upserts={record_id: make_record("posts", record_id)},
        )


@pytest.mark.parametrize(
    ("category", "fields", "problem"),
    [
        ("posts", {"privacy": "secret"}, "privacy 'secret' must be one of"),
        ("posts", {"like_count": "many"}, "like_count has the wrong type"),
        ("posts", {"created_at": "yesterday"}, "created_at 'yesterday' must be a UTC timestamp"),
        ("activity", {"kind": "poke"}, "kind 'poke' must be one of"),
        ("activity", {"mood": "happy"}, "unknown fields mood"),
        ("direct_messages", {"sender_id": "u000777"}, "neither the user nor the peer"),
        ("direct_messages", {"peer_user_id": "u 2", "sender_id": "u 2"}, "peer_user_id 'u 2'"),
        ("activity", {"kind": "follow", "target": "a/b"}, "follow target \\(a user id\\) 'a/b'"),
        ("profile", {"birth_date": "17/05/1990"}, "birth_date '17/05/1990' must be YYYY-MM-DD"),
    ],
)
def test_malformed_record_is_refused_naming_the_field(
    sqlite_db: Engine, category: str, fields: dict[str, Any], problem: str
) -> None:
    record_id = "u000001" if category == "profile" else "r1"
    with pytest.raises(ValidationError, match=problem), sqlite_db.begin() as conn:
        write_changes(
            conn,
            "u000001",
            category,
            upserts={record_id: make_record(category, record_id, **fields)},
        )


def test_record_missing_a_field_is_refused(sqlite_db: Engine) -> None:
    data = make_record("posts", "p1")
    del data["video"]
    with (
        pytest.raises(ValidationError, match="posts record is missing video"),
        sqlite_db.begin() as conn,
    ):
        write_changes(conn, "u000001", "posts", upserts={"p1": data})


def test_profile_record_id_must_be_the_user_id(sqlite_db: Engine) -> None:
    with pytest.raises(ValidationError, match="must be the user id"), sqlite_db.begin() as conn:
        write_changes(
            conn, "u000001", "profile", upserts={"other": make_record("profile", "other")}
        )


def test_record_of_another_user_cannot_be_overwritten(sqlite_db: Engine) -> None:
    with sqlite_db.begin() as conn:
        write_changes(conn, "u000001", "posts", upserts={"p1": make_record("posts", "p1")})
    with pytest.raises(ValidationError, match="belongs to another user"), sqlite_db.begin() as conn:
        write_changes(
            conn, "u000002", "posts", upserts={"p1": make_record("posts", "p1", "u000002")}
        )


def test_store_refuses_unknown_category(sqlite_db: Engine) -> None:
    with (
        pytest.raises(ValidationError, match="unknown category 'stories'"),
        sqlite_db.begin() as conn,
    ):
        write_changes(conn, "u000001", "stories", upserts={})
