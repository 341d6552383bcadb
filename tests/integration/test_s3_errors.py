"""Real S3 failures reach callers as transient or permanent errors that say what to fix.

Configuration mistakes run against SeaweedFS, which checks signatures and permissions like
AWS does; network faults run through ``flaky_s3``, a proxy in front of moto that answers 503s,
resets connections or goes silent on command.
"""

from __future__ import annotations

import time

import pytest

from portability.destinations.s3 import MIN_PART_BYTES, S3Destination
from portability.errors import (
    DestinationPermanentError,
    DestinationTransientError,
    ObjectExistsError,
)
from tests.fixtures.s3 import (
    READER_ACCESS_KEY_ID,
    READER_SECRET_ACCESS_KEY,
    create_bucket,
)
from tests.fixtures.services import is_reachable

pytestmark = pytest.mark.services


# -- configuration mistakes: permanent, and the message says what to fix -------------------


def test_a_wrong_secret_is_permanent_and_says_to_fix_the_secret(s3_endpoint, s3_config):
    wrong = "not-the-secret-" + "x" * 20
    destination = S3Destination(s3_endpoint.config(s3_config.bucket, secret_access_key=wrong))

    with pytest.raises(DestinationPermanentError) as caught:
        destination.put_object("k", b"x")

    message = str(caught.value)
    assert "secret access key" in message
    assert repr(s3_config.bucket) in message
    assert s3_endpoint.endpoint_url in message
    assert wrong not in message
    assert "SignatureDoesNotMatch" in str(caught.value.__cause__)


def test_an_unknown_access_key_id_is_permanent_and_says_to_fix_it(s3_endpoint, s3_config):
    destination = S3Destination(s3_endpoint.config(s3_config.bucket, access_key_id="AKIDNOBODYHAS"))

    with pytest.raises(DestinationPermanentError, match="access key id is not known") as caught:
        destination.probe()

    assert "InvalidAccessKeyId" in str(caught.value.__cause__)


def test_a_missing_bucket_is_permanent_and_says_to_create_it(s3_endpoint):
    destination = S3Destination(s3_endpoint.config("pt-no-such-bucket-here"))

    with pytest.raises(DestinationPermanentError) as caught:
        destination.probe()

    assert str(caught.value) == (
        f"bucket 'pt-no-such-bucket-here' does not exist at {s3_endpoint.endpoint_url}: "
        "create it or fix the destination's bucket name"
    )


def test_a_key_that_may_only_read_gets_access_denied_on_write(s3_endpoint, s3_config):
    destination = S3Destination(
        s3_endpoint.config(
            s3_config.bucket,
            access_key_id=READER_ACCESS_KEY_ID,
            secret_access_key=READER_SECRET_ACCESS_KEY,
        )
    )

    with pytest.raises(DestinationPermanentError, match="access denied to bucket"):
        destination.probe()


def test_a_missing_bucket_fails_a_multipart_upload_permanently(s3_endpoint):
    upload = S3Destination(s3_endpoint.config("pt-no-such-bucket-here")).open_upload("k")

    with pytest.raises(DestinationPermanentError, match="does not exist"):
        upload.write(b"x" * MIN_PART_BYTES)


def test_an_endpoint_nobody_listens_on_is_transient(moto_endpoint):
    port = _closed_port()
    endpoint = moto_endpoint.with_url(f"http://127.0.0.1:{port}", name="nowhere")
    destination = S3Destination(endpoint.config("any-bucket", max_attempts=2))

    with pytest.raises(DestinationTransientError, match=f"cannot reach http://127.0.0.1:{port}"):
        destination.put_object("k", b"x")


# -- network faults: boto3 retries a few, the rest are transient ---------------------------


@pytest.fixture
def flaky(flaky_s3):
    """An ``S3Destination`` through the proxy on a fresh bucket, 3 attempts per request."""
    bucket = create_bucket(flaky_s3.endpoint)
    return flaky_s3, S3Destination(flaky_s3.endpoint.config(bucket, max_attempts=3))


def test_a_few_503s_are_retried_by_boto3_and_the_write_succeeds(flaky):
    proxy, destination = flaky
    proxy.fail_next(2, "503")

    destination.put_object("k", b"x")

    assert destination.get_object("k") == b"x"
    assert proxy.faults_served == ["503", "503"]


def test_503s_beyond_the_retries_become_a_transient_error(flaky):
    proxy, destination = flaky
    proxy.fail_next(3, "503")

    with pytest.raises(DestinationTransientError, match="ServiceUnavailable"):
        destination.put_object("k", b"x")

    assert proxy.pending_faults == 0
    assert destination.head_object("k") is None


def test_slow_down_beyond_the_retries_is_transient_throttling(flaky_s3):
    destination = S3Destination(
        flaky_s3.endpoint.config(create_bucket(flaky_s3.endpoint), max_attempts=1)
    )
    flaky_s3.fail_next(1, "slowdown")

    with pytest.raises(DestinationTransientError, match="throttling"):
        destination.put_object("k", b"x")


def test_a_reset_connection_is_retried_and_the_read_succeeds(flaky):
    proxy, destination = flaky
    destination.put_object("k", b"payload")
    proxy.fail_next(1, "reset")

    assert destination.get_object("k") == b"payload"
    assert proxy.faults_served == ["reset"]


def test_resets_beyond_the_retries_become_a_transient_error(flaky):
    proxy, destination = flaky
    proxy.fail_next(3, "reset")

    with pytest.raises(DestinationTransientError, match="connection"):
        destination.put_object("k", b"x")


def test_a_server_that_goes_silent_times_out_as_transient(flaky_s3):
    bucket = create_bucket(flaky_s3.endpoint)
    destination = S3Destination(flaky_s3.endpoint.config(bucket, max_attempts=1, read_timeout=0.5))
    flaky_s3.fail_next(1, "hang")
    began = time.monotonic()

    with pytest.raises(DestinationTransientError, match="did not answer in time"):
        destination.put_object("k", b"x")

    assert time.monotonic() - began < 10


def test_a_part_that_keeps_failing_aborts_the_multipart_upload(flaky):
    proxy, destination = flaky
    upload = destination.open_upload("big")
    upload.write(b"a" * MIN_PART_BYTES)  # creates the multipart upload and sends part 1
    proxy.fail_next(3, "503")

    with pytest.raises(DestinationTransientError):
        upload.write(b"b" * MIN_PART_BYTES)

    uploads = proxy.endpoint.client.list_multipart_uploads(Bucket=destination.config.bucket)
    assert uploads.get("Uploads", []) == []
    assert destination.head_object("big") is None
    with pytest.raises(RuntimeError, match="aborted"):
        upload.complete()


def test_a_lost_answer_to_a_conditional_write_reads_back_as_object_exists(flaky):
    # The PUT reached the bucket but its answer did not reach us; boto3's retry then finds our
    # own object. ObjectExistsError is therefore "compare before you call it a clash".
    proxy, destination = flaky
    proxy.fail_next(1, "lost")

    with pytest.raises(ObjectExistsError):
        destination.put_object("manifest.json", b"{}", if_none_match=True)

    assert destination.get_object("manifest.json") == b"{}"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert not is_reachable("127.0.0.1", port, timeout=0.2)
    return port
