"""Promise 10 at connect time: DNS that changes after registration cannot reach inside.

A real S3 server (moto) listens on loopback and is reached as ``http://localhost:PORT``. The
policy's resolver stands in for DNS: it says "public" at registration, then changes its answer
(the per-request check), or keeps saying "public" while the socket actually reaches 127.0.0.1
(DNS rebinding between our lookup and the connection's: the socket-level check).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from portability import registry
from portability.crypto import CredentialBox
from portability.db.engine import make_session_factory
from portability.db.models import Run
from portability.destinations.s3 import S3Destination
from portability.errors import DestinationPermanentError, FailureReason
from portability.netpolicy import EndpointPolicy
from portability.settings import Settings
from tests.fixtures.s3 import create_bucket
from tests.fixtures.transfers import run_to_end

pytestmark = pytest.mark.services

PUBLIC = "93.184.215.14"


class ChangingDns:
    """A resolver whose answer the test changes, as a developer controlling DNS would."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)

    def __call__(self, _host: str) -> list[str]:
        return self.addresses


def localhost_url(endpoint_url: str) -> str:
    return f"http://localhost:{urlsplit(endpoint_url).port}"


def objects(moto_endpoint, bucket: str) -> list[str]:
    listing = moto_endpoint.client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_name_that_turns_private_after_registration_is_refused_before_sending(
    moto_endpoint, sqlite_engine
):
    bucket = create_bucket(moto_endpoint)
    dns = ChangingDns(PUBLIC)
    policy = EndpointPolicy(allow_http=True, resolve=dns)
    box = CredentialBox(Fernet.generate_key())
    with make_session_factory(sqlite_engine).begin() as session:
        row = _register(session, box, policy, moto_endpoint, bucket)
        dns.addresses = ["10.0.0.9"]
        destination = S3Destination.from_row(row, box, Settings(), endpoint_policy=policy)

    with pytest.raises(DestinationPermanentError) as refused:
        destination.put_object("exports/x.json", b"{}")

    assert str(refused.value) == (
        "the destination's endpoint was refused: endpoint host 'localhost' does not resolve to "
        "a public internet address; fix the destination's endpoint URL"
    )
    assert "resolves to 10.0.0.9" in (refused.value.detail or "")
    assert objects(moto_endpoint, bucket) == []


def test_a_connection_that_reaches_a_private_address_is_closed_before_any_request(
    moto_endpoint,
):
    bucket = create_bucket(moto_endpoint)
    rebinding = EndpointPolicy(allow_http=True, resolve=ChangingDns(PUBLIC))
    config = moto_endpoint.config(
        bucket,
        endpoint_url=localhost_url(moto_endpoint.endpoint_url),
        endpoint_policy=rebinding,
        max_attempts=1,
    )

    with pytest.raises(DestinationPermanentError) as refused:
        S3Destination(config).put_object("exports/x.json", b"{}")

    assert "connected to 127.0.0.1, a loopback address" in (refused.value.detail or "")
    assert objects(moto_endpoint, bucket) == []


def test_the_same_endpoint_is_reached_when_private_addresses_are_allowed(moto_endpoint):
    bucket = create_bucket(moto_endpoint)
    allowed = EndpointPolicy(allow_http=True, allow_private=True)
    config = moto_endpoint.config(
        bucket, endpoint_url=localhost_url(moto_endpoint.endpoint_url), endpoint_policy=allowed
    )

    S3Destination(config).put_object("exports/x.json", b"{}")

    assert objects(moto_endpoint, bucket) == ["exports/x.json"]


def test_plain_http_is_refused_when_the_client_is_made(moto_endpoint):
    config = moto_endpoint.config("any-bucket", endpoint_policy=EndpointPolicy(allow_private=True))

    with pytest.raises(DestinationPermanentError, match="must use https"):
        S3Destination(config)


def test_a_run_to_a_refused_endpoint_fails_in_our_words_with_the_address_kept_for_staff(
    moto_endpoint, sqlite_engine, make_transfer
):
    bucket = create_bucket(moto_endpoint)
    config = moto_endpoint.config(
        bucket,
        endpoint_url=localhost_url(moto_endpoint.endpoint_url),
        endpoint_policy=EndpointPolicy(allow_http=True, resolve=ChangingDns("10.0.0.9")),
    )
    transfer = make_transfer(sqlite_engine, S3Destination(config), records=20)

    run_id = transfer.new_run()

    status = run_to_end(transfer, run_id)

    run: Run = transfer.run(run_id)
    assert status == "failed"
    assert run.failure_reason == FailureReason.DESTINATION_PERMANENT
    assert "10.0.0.9" not in (run.last_error or "")
    assert "10.0.0.9" in (run.error_detail or "")


def _register(session: Session, box: CredentialBox, policy: EndpointPolicy, endpoint, bucket: str):
    app, _ = registry.create_app(
        session, name="Acme", contact_email="dev@acme.example", use_case="Backs up the posts."
    )
    return registry.add_destination(
        session,
        box,
        app_id=app.id,
        bucket=bucket,
        endpoint_url=localhost_url(endpoint.endpoint_url),
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
        endpoint_policy=policy,
    )
