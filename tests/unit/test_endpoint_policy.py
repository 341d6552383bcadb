"""Promise 10: a destination URL cannot reach internal addresses, nor carry data in clear text.

Registration is checked here (``registry.add_destination`` and the ORM validator); the same
policy at connect time is in ``tests/integration/test_endpoint_guard.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from portability import registry
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import Destination
from portability.errors import EndpointRefusedError, ValidationError
from portability.netpolicy import EndpointPolicy
from portability.settings import Settings

PUBLIC = "93.184.215.14"


def resolving(*addresses: str) -> EndpointPolicy:
    """The default (strict) policy, with every name resolving to ``addresses``."""
    return EndpointPolicy(resolve=lambda _host: list(addresses))


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as session:
        yield session
    engine.dispose()


@pytest.fixture
def app_id(session: Session) -> int:
    app, _ = registry.create_app(
        session, name="Acme", contact_email="dev@acme.example", use_case="Backs up the posts."
    )
    return app.id


def register(session: Session, app_id: int, url: str, policy: EndpointPolicy) -> Destination:
    return registry.add_destination(
        session,
        CredentialBox(Fernet.generate_key()),
        app_id=app_id,
        bucket="exports",
        access_key_id="AKIA",
        secret_access_key="secret",
        endpoint_url=url,
        endpoint_policy=policy,
    )


def test_a_public_https_endpoint_is_registered(session: Session, app_id: int) -> None:
    row = register(session, app_id, "https://s3.acme.example", resolving(PUBLIC))

    assert row.endpoint_url == "https://s3.acme.example"


def test_plain_http_is_refused_by_default(session: Session, app_id: int) -> None:
    with pytest.raises(EndpointRefusedError, match="must use https"):
        register(session, app_id, "http://s3.acme.example", resolving(PUBLIC))


def test_plain_http_is_allowed_when_the_setting_says_so(session: Session, app_id: int) -> None:
    policy = EndpointPolicy(allow_http=True, resolve=lambda _h: [PUBLIC])

    assert register(session, app_id, "http://s3.acme.example", policy).id


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.5", "private"),
        ("192.168.1.10", "private"),
        ("169.254.10.10", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("::1", "loopback"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ],
)
def test_a_name_that_resolves_to_an_internal_address_is_refused(
    session: Session, app_id: int, address: str, problem: str
) -> None:
    with pytest.raises(EndpointRefusedError) as refused:
        register(session, app_id, "https://bucket.attacker.example", resolving(address))

    assert str(refused.value) == (
        "endpoint host 'bucket.attacker.example' does not resolve to a public internet address"
    )
    assert problem in (refused.value.detail or "")  # the address stays in the staff diagnostic


def test_one_internal_address_among_public_ones_is_enough_to_refuse(
    session: Session, app_id: int
) -> None:
    with pytest.raises(EndpointRefusedError, match="public internet address"):
        register(session, app_id, "https://s3.acme.example", resolving(PUBLIC, "10.0.0.8"))


def test_a_name_that_does_not_resolve_is_refused(session: Session, app_id: int) -> None:
    def nowhere(host: str) -> list[str]:
        raise OSError(f"{host}: Name or service not known")

    with pytest.raises(EndpointRefusedError, match="does not resolve to a public"):
        register(session, app_id, "https://typo.acme.example", EndpointPolicy(resolve=nowhere))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "[::1]", "100.64.3.4"])
def test_a_literal_internal_address_is_refused_and_named(
    session: Session, app_id: int, address: str
) -> None:
    with pytest.raises(EndpointRefusedError, match=f"endpoint address {address.strip('[]')}"):
        register(session, app_id, f"https://{address}:9000", resolving(PUBLIC))


def test_private_addresses_are_allowed_when_the_setting_says_so(
    session: Session, app_id: int
) -> None:
    policy = EndpointPolicy(allow_http=True, allow_private=True)

    assert register(session, app_id, "http://127.0.0.1:8333", policy).id


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://0.0.0.0:9000",
        "http://224.0.0.1",
        "http://240.0.0.1",
    ],
)
def test_metadata_and_reserved_addresses_are_refused_whatever_the_settings(
    session: Session, app_id: int, url: str
) -> None:
    everything = EndpointPolicy(allow_http=True, allow_private=True)

    with pytest.raises(EndpointRefusedError):
        register(session, app_id, url, everything)


def test_a_name_resolving_to_the_metadata_service_is_refused_whatever_the_settings(
    session: Session, app_id: int
) -> None:
    policy = EndpointPolicy(
        allow_http=True, allow_private=True, resolve=lambda _h: ["169.254.169.254"]
    )

    with pytest.raises(EndpointRefusedError) as refused:
        register(session, app_id, "http://innocent.example", policy)

    assert "cloud metadata" in (refused.value.detail or "")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://169.254.169.254", "cloud metadata service"),
        ("https://metadata.google.internal", "cloud metadata service"),
        ("https://user:pw@s3.acme.example", "must not carry user info"),
        ("ftp://s3.acme.example", "must start with http"),
        ("https://s3.acme.example/?x=1", "query or fragment"),
    ],
)
def test_the_model_refuses_what_no_setting_allows(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Destination(endpoint_url=url)


def test_the_settings_build_a_strict_policy_by_default() -> None:
    assert (Settings().endpoint_policy, Settings(allow_http_endpoints=True).endpoint_policy) == (
        EndpointPolicy(allow_http=False, allow_private=False),
        EndpointPolicy(allow_http=True, allow_private=False),
    )
