"""Only what a manifest lists is read, and only if it is exactly what the manifest promises."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from portability.consumer import consume
from portability.records import SCHEMA_VERSION
from tests.fixtures.consumer import PREFIX, STREAM, ids
from tests.fixtures.exports import ExportWriter, changes


@pytest.fixture
def records_per_part() -> int:
    """The refusals below name parts of 25 records."""
    return 25


def test_a_stray_part_that_no_manifest_lists_is_ignored_and_counted(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 30)))
    # A crashed attempt left parts for a range that never got a manifest, and a developer
    # dropped a file of their own under the prefix.
    crashed = ExportWriter(bucket, prefix=PREFIX, user_id="u1", category="posts")
    crashed.checkpoint = 30
    crashed.sequence = 1
    crashed.deliver(list(changes("posts", "u1", 5, start=1000)), write_manifest=False)
    bucket.put_object(f"{PREFIX}/README.txt", b"not ours")

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert report.records == 30
    assert report.ignored_objects == 2
    assert f"{PREFIX}/README.txt" in report.ignored_sample
    assert ids(store) == {c.record_id for c in changes("posts", "u1", 30)}


def test_parts_of_applied_manifests_are_not_counted_as_ignored_later(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 60)))
    consume(bucket, store, prefix=PREFIX)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ignored_objects == 0


def test_a_part_whose_bytes_were_altered_is_refused_with_its_key(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))
    second = stream.deliver(list(changes("posts", "u1", 60, start=10)))
    consume(bucket, store, prefix=PREFIX)
    store_before = ids(store)
    third = stream.deliver(list(changes("posts", "u1", 60, start=70)))
    altered = third.manifest.parts[1].key
    body = bytearray(bucket.objects[altered])
    body[-12] ^= 0xFF  # flip a byte inside the compressed stream, size unchanged
    bucket.objects[altered] = bytes(body)

    report = consume(bucket, store, prefix=PREFIX)

    assert [(p.kind, p.key) for p in report.problems] == [("integrity", altered)]
    assert "SHA-256" in report.problems[0].message
    assert altered in report.problems[0].message
    # Nothing of manifest 3 was applied -- not even its first, intact part.
    assert ids(store) == store_before
    assert store.position(STREAM).manifest_key == second.key
    assert report.pending == 1


def test_a_part_of_the_wrong_size_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 40)))
    key = delivered.manifest.parts[0].key
    bucket.objects[key] += b"\x00"

    report = consume(bucket, store, prefix=PREFIX)

    assert [p.key for p in report.problems] == [key]
    assert "size" in report.problems[0].message
    assert ids(store) == set()
    assert store.position(STREAM) is None


def test_a_part_that_is_missing_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 40)))
    key = delivered.manifest.parts[1].key
    bucket.delete_object(key)

    report = consume(bucket, store, prefix=PREFIX)

    assert [p.key for p in report.problems] == [key]
    assert "not found" in report.problems[0].message
    assert ids(store) == set()


def test_a_part_whose_record_count_differs_from_the_manifest_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 40)))
    part = delivered.manifest.parts[0]
    # Rewrite the manifest as if the part held one record more than it does.
    lying = delivered.manifest.model_copy(
        update={
            "parts": [
                part.model_copy(update={"records": part.records + 1, "upserts": part.upserts + 1}),
                *delivered.manifest.parts[1:],
            ],
            "records": delivered.manifest.records + 1,
        }
    )
    bucket.objects[delivered.key] = lying.to_json()

    report = consume(bucket, store, prefix=PREFIX)

    assert [p.key for p in report.problems] == [part.key]
    assert "25 records" in report.problems[0].message
    assert ids(store) == set()


def test_a_part_that_is_not_valid_json_lines_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 3)))
    part = delivered.manifest.parts[0]
    body = gzip.compress(b'{"id": "a", "op": "upsert"\n')
    bucket.objects[part.key] = body
    bucket.objects[delivered.key] = delivered.manifest.model_copy(
        update={
            "parts": [
                part.model_copy(
                    update={
                        "bytes": len(body),
                        "sha256": hashlib.sha256(body).hexdigest(),
                    }
                )
            ],
            "bytes": len(body),
        }
    ).to_json()

    report = consume(bucket, store, prefix=PREFIX)

    assert [p.key for p in report.problems] == [part.key]
    assert "line 1" in report.problems[0].message


def test_a_manifest_listing_a_part_of_another_user_is_refused(bucket, store, stream):
    other = ExportWriter(bucket, prefix=PREFIX, user_id="u2", category="posts")
    theirs = other.deliver(list(changes("posts", "u2", 5)))
    delivered = stream.deliver(list(changes("posts", "u1", 5)))
    smuggling = delivered.manifest.model_copy(update={"parts": theirs.manifest.parts})
    bucket.objects[delivered.key] = smuggling.to_json()

    report = consume(bucket, store, prefix=PREFIX)

    assert [p.key for p in report.problems] == [delivered.key]
    assert "not a part of u1/posts/g1" in report.problems[0].message
    assert ids(store) == set()
    assert store.count("posts", "u2") == 5  # the other stream is unaffected


def test_a_manifest_that_contradicts_its_key_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 5)))
    bucket.objects[delivered.key] = delivered.manifest.model_copy(
        update={"user": "someone-else"}
    ).to_json()

    report = consume(bucket, store, prefix=PREFIX)

    assert [p.key for p in report.problems] == [delivered.key]
    assert "its key says" in report.problems[0].message


def test_a_manifest_that_is_not_json_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 5)))
    bucket.objects[delivered.key] = b"{not json"

    report = consume(bucket, store, prefix=PREFIX)

    assert [(p.kind, p.key) for p in report.problems] == [("integrity", delivered.key)]
    assert "not a valid manifest" in report.problems[0].message


def test_a_manifest_of_a_newer_schema_version_asks_for_an_upgrade(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 5)))
    bucket.objects[delivered.key] = delivered.manifest.model_copy(
        update={"schema_version": SCHEMA_VERSION + 1}
    ).to_json()

    report = consume(bucket, store, prefix=PREFIX)

    assert "upgrade the consumer" in report.problems[0].message
    assert ids(store) == set()


def test_a_refused_manifest_is_applied_once_it_is_repaired(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 30)))
    key = delivered.manifest.parts[0].key
    good = bucket.objects[key]
    bucket.objects[key] = good[:-1] + bytes([good[-1] ^ 1])
    assert not consume(bucket, store, prefix=PREFIX).ok

    bucket.objects[key] = good
    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert len(ids(store)) == 30
