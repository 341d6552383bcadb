"""One suite, every ``Destination``: the in-memory one, moto and a real SeaweedFS over HTTP.

A test here that passes on ``memory`` but fails on an S3 server means the memory destination
is not honest, and the engine tests that rely on it prove less than they claim.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from portability.destinations.base import Destination, ObjectInfo, Upload
from portability.destinations.memory import MemoryDestination
from portability.destinations.s3 import MIN_PART_BYTES, PROBE_PREFIX, S3Destination
from portability.errors import (
    DestinationPermanentError,
    DestinationTransientError,
    NotFoundError,
    ObjectExistsError,
)
from tests.fixtures.s3 import create_bucket

CHUNK = MIN_PART_BYTES  # every S3 destination here uses 5 MiB chunks


@pytest.fixture(
    params=[
        "memory",
        pytest.param("moto", marks=pytest.mark.services),
        pytest.param("seaweedfs", marks=pytest.mark.services),
    ]
)
def destination(request: pytest.FixtureRequest) -> Destination:
    """A fresh, empty destination of each kind."""
    if request.param == "memory":
        return MemoryDestination()
    endpoint = request.getfixturevalue(
        "moto_endpoint" if request.param == "moto" else "s3_endpoint"
    )
    return S3Destination(endpoint.config(create_bucket(endpoint)))


@pytest.fixture(
    params=[
        pytest.param("moto", marks=pytest.mark.services),
        pytest.param("seaweedfs", marks=pytest.mark.services),
    ]
)
def s3_destination(request: pytest.FixtureRequest) -> S3Destination:
    endpoint = request.getfixturevalue(
        "moto_endpoint" if request.param == "moto" else "s3_endpoint"
    )
    return S3Destination(endpoint.config(create_bucket(endpoint)))


def _payload(size: int) -> bytes:
    return os.urandom(size)


def _write_in_pieces(upload: Upload, data: bytes, piece: int = 1_000_003) -> None:
    """Uneven pieces, so chunk boundaries fall in the middle of writes."""
    for start in range(0, len(data), piece):
        upload.write(data[start : start + piece])


def _digest(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def _keys(destination: Destination, prefix: str = "") -> list[str]:
    return [info.key for info in destination.list_objects(prefix)]


# -- whole objects -------------------------------------------------------------------------


def test_an_object_put_reads_back_byte_for_byte(destination):
    destination.put_object("u1/posts/part-00001.jsonl.gz", b"\x1f\x8b binary \x00 body")

    assert destination.get_object("u1/posts/part-00001.jsonl.gz") == b"\x1f\x8b binary \x00 body"


def test_head_gives_the_size_and_the_user_metadata(destination):
    destination.put_object("a/b.json", b"12345", metadata={"records": "5", "run-id": "42"})

    assert destination.head_object("a/b.json") == ObjectInfo(
        "a/b.json", 5, {"records": "5", "run-id": "42"}
    )


def test_head_of_a_missing_key_is_none(destination):
    assert destination.head_object("nothing/here") is None


def test_get_of_a_missing_key_raises_not_found(destination):
    with pytest.raises(NotFoundError, match="nothing/here"):
        destination.get_object("nothing/here")


def test_an_unconditional_put_replaces_the_object(destination):
    destination.put_object("k", b"first")
    destination.put_object("k", b"second")

    assert destination.get_object("k") == b"second"


def test_a_conditional_write_creates_a_missing_key(destination):
    destination.put_object("m/0000000001.json", b"{}", if_none_match=True)

    assert destination.get_object("m/0000000001.json") == b"{}"


def test_a_conditional_write_refuses_an_existing_key_and_keeps_the_first(destination):
    destination.put_object("m/0000000001.json", b"first", if_none_match=True)

    with pytest.raises(ObjectExistsError, match=r"m/0000000001\.json"):
        destination.put_object("m/0000000001.json", b"second", if_none_match=True)
    assert destination.get_object("m/0000000001.json") == b"first"


def test_listing_yields_the_prefix_only_in_key_order(destination):
    for key in ["u/posts/b", "u/posts/a/2", "u/posts/a/10", "u/postsX", "u/profile/a", "v/posts"]:
        destination.put_object(key, b"x" * len(key))

    listed = list(destination.list_objects("u/posts/"))

    assert listed == [
        ObjectInfo("u/posts/a/10", 12, {}),
        ObjectInfo("u/posts/a/2", 11, {}),
        ObjectInfo("u/posts/b", 9, {}),
    ]


def test_listing_walks_every_page(destination):
    if isinstance(destination, S3Destination):
        destination.list_page_size = 2
    keys = [f"p/{n:03d}" for n in range(7)]
    for key in reversed(keys):
        destination.put_object(key, b"")

    assert _keys(destination, "p/") == keys


def test_listing_an_empty_prefix_yields_nothing(destination):
    assert _keys(destination, "nobody/") == []


def test_delete_removes_the_object_and_repeating_it_is_harmless(destination):
    destination.put_object("gone", b"x")

    destination.delete_object("gone")
    destination.delete_object("gone")

    assert destination.head_object("gone") is None
    assert _keys(destination) == []


# -- streaming uploads ---------------------------------------------------------------------


def test_an_upload_larger_than_one_chunk_assembles_exactly(destination):
    data = _payload(2 * CHUNK + 123_457)
    upload = destination.open_upload("big/part-00001.jsonl.gz", metadata={"records": "9"})

    _write_in_pieces(upload, data)
    upload.complete()

    assert _digest(destination.get_object("big/part-00001.jsonl.gz")) == _digest(data)
    assert destination.head_object("big/part-00001.jsonl.gz") == ObjectInfo(
        "big/part-00001.jsonl.gz", len(data), {"records": "9"}
    )


def test_an_upload_of_exactly_one_chunk_assembles_exactly(destination):
    data = _payload(CHUNK)
    upload = destination.open_upload("one-chunk")

    upload.write(data)
    upload.complete()

    assert _digest(destination.get_object("one-chunk")) == _digest(data)


def test_an_upload_smaller_than_one_chunk_is_one_object_with_its_metadata(destination):
    upload = destination.open_upload("small", metadata={"sha256": "ab"})

    upload.write(b"line 1\n")
    upload.write(b"line 2\n")
    upload.complete()

    assert destination.get_object("small") == b"line 1\nline 2\n"
    assert destination.head_object("small") == ObjectInfo("small", 14, {"sha256": "ab"})


def test_an_empty_upload_makes_an_empty_object(destination):
    upload = destination.open_upload("empty")

    upload.complete()

    assert destination.get_object("empty") == b""


def test_an_upload_is_invisible_until_complete(destination):
    upload = destination.open_upload("pending/part")
    _write_in_pieces(upload, _payload(CHUNK + 10))

    assert destination.head_object("pending/part") is None
    assert _keys(destination, "pending/") == []

    upload.complete()
    assert _keys(destination, "pending/") == ["pending/part"]


def test_an_aborted_upload_leaves_nothing_and_aborting_twice_is_harmless(destination):
    upload = destination.open_upload("aborted/part")
    _write_in_pieces(upload, _payload(CHUNK + 10))

    upload.abort()
    upload.abort()

    assert destination.head_object("aborted/part") is None
    assert _keys(destination) == []


def test_an_upload_refuses_writes_after_complete(destination):
    upload = destination.open_upload("done")
    upload.write(b"x")
    upload.complete()

    with pytest.raises(RuntimeError, match="completed"):
        upload.write(b"y")
    upload.abort()  # a cleanup path may still call it: a no-op
    assert destination.get_object("done") == b"x"


# -- probe ---------------------------------------------------------------------------------


def test_probe_succeeds_and_leaves_no_probe_object(destination):
    destination.probe()

    assert _keys(destination, PROBE_PREFIX) == []


# -- S3 specifics --------------------------------------------------------------------------


def test_a_large_upload_goes_up_as_multipart_parts(s3_destination):
    upload = s3_destination.open_upload("mp")
    _write_in_pieces(upload, _payload(2 * CHUNK + 1))
    upload.complete()

    client = s3_destination._client  # inspection only
    etag = client.head_object(Bucket=s3_destination.config.bucket, Key="mp")["ETag"]
    assert etag.strip('"').endswith("-3")


def test_an_upload_holds_at_most_one_chunk_in_memory(s3_destination):
    upload = s3_destination.open_upload("bounded")
    for _ in range(3 * CHUNK // 1_000_000 + 1):
        upload.write(b"z" * 1_000_000)
        assert len(upload._buffer) < CHUNK

    upload.complete()
    assert s3_destination.head_object("bounded").size == (3 * CHUNK // 1_000_000 + 1) * 1_000_000


def test_an_aborted_upload_leaves_no_incomplete_multipart_upload(s3_destination):
    upload = s3_destination.open_upload("aborted")
    _write_in_pieces(upload, _payload(CHUNK + 1))
    assert upload.upload_id is not None

    upload.abort()

    listing = s3_destination._client.list_multipart_uploads(Bucket=s3_destination.config.bucket)
    assert listing.get("Uploads", []) == []


@pytest.mark.services
def test_server_side_encryption_is_requested_on_puts_and_multipart_uploads(moto_endpoint):
    destination = S3Destination(
        moto_endpoint.config(create_bucket(moto_endpoint), server_side_encryption="AES256")
    )
    destination.put_object("whole", b"x")
    upload = destination.open_upload("parts")
    _write_in_pieces(upload, _payload(CHUNK + 1))
    upload.complete()

    client, bucket = destination._client, destination.config.bucket
    assert [
        client.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption")
        for key in ("whole", "parts")
    ] == ["AES256", "AES256"]


# -- MemoryDestination's fault injection (what engine tests script) ------------------------


def test_memory_fail_next_fails_the_next_writes_then_lets_them_through():
    destination = MemoryDestination()
    destination.fail_next(2, DestinationTransientError("503 Slow Down"))

    for _ in range(2):
        with pytest.raises(DestinationTransientError, match="503 Slow Down"):
            destination.put_object("k", b"x")
    destination.put_object("k", b"x")

    assert destination.objects == {"k": b"x"}


def test_memory_fail_next_counts_an_upload_completion_as_a_write_and_discards_it():
    destination = MemoryDestination()
    destination.fail_next(1, "permanent")
    upload = destination.open_upload("part")
    upload.write(b"data")

    with pytest.raises(DestinationPermanentError):
        upload.complete()

    assert (destination.objects, destination.open_uploads) == ({}, 0)


def test_memory_fail_next_can_target_keys_and_other_operations():
    destination = MemoryDestination()
    destination.put_object("s/parts/1", b"p")
    destination.fail_next(1, "transient", key_contains="/manifests/")
    destination.fail_next(1, "transient", on=["get"])

    destination.put_object("s/parts/2", b"p")
    with pytest.raises(DestinationTransientError):
        destination.get_object("s/parts/1")
    with pytest.raises(DestinationTransientError):
        destination.put_object("s/manifests/1.json", b"{}")

    assert sorted(destination.objects) == ["s/parts/1", "s/parts/2"]
    assert destination.pending_faults == 0


def test_memory_fail_next_zero_clears_every_fault():
    destination = MemoryDestination()
    destination.fail_next(10, DestinationTransientError("connection reset"))

    destination.fail_next(0, None)

    destination.put_object("k", b"x")
    assert destination.objects == {"k": b"x"}
