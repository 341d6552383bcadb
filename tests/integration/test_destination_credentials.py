"""Destination credentials: sealed at rest, opened only in memory, never shown."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from portability import registry
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import Destination as DestinationRow
from portability.destinations.s3 import S3Config, S3Destination
from portability.errors import DestinationPermanentError
from portability.netpolicy import EndpointPolicy
from portability.settings import Settings
from tests.fixtures.s3 import create_bucket

pytestmark = pytest.mark.services

ACCESS_KEY_ID = "AKIAPORTABILITYTEST1"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPORTABILITY"
# Test endpoints: http, on loopback, and s3.example made to resolve to a public address.
LOCAL = {"allow_http_endpoints": True, "allow_private_endpoints": True}
POLICY = EndpointPolicy(
    allow_http=True, allow_private=True, resolve=lambda _host: ["93.184.215.14"]
)


@pytest.fixture
def sessions(pg_url):
    engine = make_engine(pg_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def box():
    return CredentialBox(Fernet.generate_key())


def _register(sessions: sessionmaker[Session], box: CredentialBox, **destination: Any) -> int:
    with sessions.begin() as session:
        app, _ = registry.create_app(
            session, name="Archiver", contact_email="dev@example.com", use_case="archives posts"
        )
        row = registry.add_destination(
            session, box, app_id=app.id, endpoint_policy=POLICY, **destination
        )
        return row.id


def test_no_column_of_a_stored_destination_holds_the_keys(sessions, box):
    destination_id = _register(
        sessions,
        box,
        bucket="exports",
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET,
        endpoint_url="http://s3.example:9000",
    )

    with sessions() as session:
        row = session.execute(
            text("SELECT * FROM destinations WHERE id = :id"), {"id": destination_id}
        ).one()

    leaks = {
        column: value
        for column, value in row._mapping.items()
        if value is not None and (SECRET in str(value) or ACCESS_KEY_ID in str(value))
    }
    assert leaks == {}


def test_from_row_opens_the_sealed_keys_and_applies_the_settings(sessions, box):
    destination_id = _register(
        sessions,
        box,
        bucket="exports",
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET,
        endpoint_url="http://s3.example:9000",
        region="eu-central-1",
        addressing_style="virtual",
        server_side_encryption="AES256",
    )
    settings = Settings(s3_multipart_chunk_mib=16, s3_max_attempts=7, s3_read_timeout=30.0, **LOCAL)

    with sessions() as session:
        row = session.get(DestinationRow, destination_id)
        destination = S3Destination.from_row(row, box, settings)

    assert destination.config == S3Config(
        bucket="exports",
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET,
        endpoint_url="http://s3.example:9000",
        region="eu-central-1",
        addressing_style="virtual",
        server_side_encryption="AES256",
        checksum_mode="when_required",
        max_attempts=7,
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=30.0,
        multipart_chunk_bytes=16 * 1024 * 1024,
    )


def test_a_registered_destination_reaches_its_bucket_with_the_opened_keys(
    sessions, box, s3_endpoint
):
    bucket = create_bucket(s3_endpoint)
    destination_id = _register(
        sessions,
        box,
        bucket=bucket,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
        endpoint_url=s3_endpoint.endpoint_url,
    )

    with sessions() as session:
        row = session.get(DestinationRow, destination_id)
        destination = S3Destination.from_row(row, box, Settings(**LOCAL))

    destination.probe()


def test_repr_and_str_never_show_the_keys():
    config = S3Config(bucket="exports", access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET)
    destination = S3Destination(config)
    upload = destination.open_upload("k")

    shown = " ".join(repr(x) + str(x) for x in (config, destination, upload))

    assert SECRET not in shown
    assert ACCESS_KEY_ID not in shown
    assert "exports" in shown


def test_a_refused_secret_is_neither_in_the_error_nor_in_our_logs(s3_endpoint, caplog):
    wrong_secret = "leaky-" + SECRET
    config = s3_endpoint.config(create_bucket(s3_endpoint), secret_access_key=wrong_secret)
    caplog.set_level(logging.DEBUG, logger="portability")

    with pytest.raises(DestinationPermanentError) as caught:
        S3Destination(config).probe()

    assert wrong_secret not in str(caught.value)
    assert wrong_secret not in caplog.text
