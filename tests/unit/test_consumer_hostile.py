"""The bucket is hostile input: what someone else wrote there cannot get past the consumer.

Each test plants one malicious object, with a manifest that vouches for its size and SHA-256
(an attacker who can write parts can write manifests too), and checks that the stream stops on
a problem naming the object, with nothing of it applied.
"""

from __future__ import annotations

import gzip
import hashlib

import orjson
import pytest

from portability.consumer import ConsumerLimits, JsonlStore, consume, snapshot_name
from portability.consumer._fetch import fetch_part
from portability.consumer._verify import RefusedObjectError
from portability.manifest import PartEntry
from tests.fixtures.consumer import PREFIX, STREAM, ids
from tests.fixtures.exports import ExportWriter, changes

GOOD = b'{"id":"a","op":"upsert","changed_at":"t","data":{"n":1}}'


def part_of(*lines: bytes) -> bytes:
    return gzip.compress(b"".join(line + b"\n" for line in lines))


def refusal(report) -> tuple[str, str]:
    assert len(report.problems) == 1, report.problems
    return report.problems[0].key, report.problems[0].message


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        # The injection: members after data once became part of the stored data text.
        (
            b'{"id":"a","op":"upsert","changed_at":"t","data":{},"user_id":"evil","z":{}}',
            "unknown member(s) 'user_id', 'z'",
        ),
        (b'{"id":"a","op":"upsert","changed_at":"t","data":{"x":}}', "not valid JSON"),
        (b'{"id":"a","id":"b","op":"upsert","changed_at":"t","data":{}}', "'id' appears twice"),
        (b'{"id":"a","op":"upsert","changed_at":"t","data":{},"data":{}}', "'data' appears twice"),
        (b'{"id":"a","op":"upsert","changed_at":"t"}', "missing data"),
        (b'{"id":"a","op":"upsert","changed_at":null,"data":{}}', "must be strings"),
        (b'{"id":["a"],"op":"upsert","changed_at":"t","data":{}}', "must be strings"),
        (b'{"id":"a","op":"upsert","changed_at":"t","data":[1]}', "data of type list"),
        (b'{"id":"a","op":"upsert","changed_at":"t","data":{"v":NaN}}', "not valid JSON"),
        (b'{"id":"a","op":"upsert","changed_at":"t","data":{"s":"\\ud800"}}', "not valid JSON"),
        (b'{"id":"a\x00","op":"upsert","changed_at":"t\x01","data":{}}', "not valid JSON"),
    ],
)
def test_a_line_that_is_not_exactly_one_change_record_is_refused(
    bucket, store, stream, line, problem
):
    stream.deliver(list(changes("posts", "u1", 3)))
    hostile = stream.deliver_raw(part_of(GOOD, line), upserts=2)

    report = consume(bucket, store, prefix=PREFIX)

    key, message = refusal(report)
    assert key == hostile.manifest.parts[0].key
    assert "line 2" in message
    assert problem in message
    assert len(ids(store)) == 3  # the first delivery only


def test_an_injected_member_never_reaches_a_jsonl_snapshot(bucket, tmp_path, stream):
    stream.deliver_raw(
        part_of(b'{"id":"a","op":"upsert","changed_at":"t","data":{},"user_id":"evil","z":{}}')
    )

    with JsonlStore(tmp_path / "c.db", tmp_path / "out") as jsonl:
        report = consume(bucket, jsonl, prefix=PREFIX)
        snapshot = jsonl.snapshot_path("posts", "u1")

    assert not report.ok
    assert not snapshot.exists()


def test_lines_written_differently_are_stored_as_one_canonical_object(bucket, store, stream):
    spaced = b'{ "data" : {"b": 2, "a": [1, 2.5e0]}, "changed_at": "t", "op": "upsert", "id": "a"}'
    stream.deliver_raw(part_of(spaced))

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    (row,) = store.raw_records("posts", "u1")
    assert row == ("a", "t", '{"b":2,"a":[1,2.5]}')


def test_a_part_without_newlines_stops_at_the_line_limit(bucket, store, stream):
    endless = b'{"id":"a","op":"upsert","changed_at":"t","data":{"pad":"' + b"x" * (3 << 20)
    hostile = stream.deliver_raw(gzip.compress(endless))

    report = consume(bucket, store, prefix=PREFIX, limits=ConsumerLimits(max_line_bytes=1 << 20))

    key, message = refusal(report)
    assert key == hostile.manifest.parts[0].key
    assert f"a line longer than {1 << 20} bytes" in message


def test_a_decompression_bomb_stops_at_the_inflation_ratio(bucket, store, stream):
    bomb = gzip.compress(b"\n" * (40 << 20), compresslevel=9)  # ~40 KiB that inflate ~1000x
    hostile = stream.deliver_raw(bomb)

    report = consume(bucket, store, prefix=PREFIX)

    key, message = refusal(report)
    assert key == hostile.manifest.parts[0].key
    assert "inflates to more than" in message


def test_a_part_over_the_absolute_inflated_size_is_refused(bucket, store, stream):
    hostile = stream.deliver_raw(part_of(*[GOOD] * 2000), upserts=2000)
    limits = ConsumerLimits(max_part_inflated_bytes=64 << 10)

    report = consume(bucket, store, prefix=PREFIX, limits=limits)

    key, message = refusal(report)
    assert key == hostile.manifest.parts[0].key
    assert f"more than {64 << 10} bytes" in message


def test_a_manifest_over_the_size_limit_is_refused_unread(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 3)))
    limits = ConsumerLimits(max_manifest_bytes=len(bucket.objects[delivered.key]) - 1)

    report = consume(bucket, store, prefix=PREFIX, limits=limits)

    key, message = refusal(report)
    assert key == delivered.key
    assert "over the limit" in message
    assert ("get", delivered.key) not in bucket.operations


def test_a_part_larger_than_its_manifest_says_is_refused_unread(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 30)))
    key = delivered.manifest.parts[0].key
    bucket.objects[key] += b"\x00" * (1 << 20)

    report = consume(bucket, store, prefix=PREFIX)

    assert refusal(report)[0] == key
    assert "the manifest says" in report.problems[0].message
    assert ("get", key) not in bucket.operations
    assert store.position(STREAM) is None


def test_a_part_missing_from_the_listing_is_sized_by_head_before_it_is_read(bucket):
    body = part_of(GOOD)
    bucket.put_object("k", body + b"more")
    part = PartEntry(
        key="k",
        records=1,
        upserts=1,
        deletes=0,
        bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
    )

    with pytest.raises(RefusedObjectError, match="not downloaded"):
        fetch_part(bucket, part, "m")

    assert [op for op, _ in bucket.operations] == ["put", "head"]


def test_a_manifest_declaring_a_part_over_the_part_limit_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 30)))
    limits = ConsumerLimits(max_part_bytes=delivered.manifest.parts[0].bytes - 1)

    report = consume(bucket, store, prefix=PREFIX, limits=limits)

    key, message = refusal(report)
    assert key == delivered.key
    assert "more than this consumer's limit" in message


@pytest.mark.parametrize(
    "key",
    [
        # Inside the stream's parts/ folder by prefix, but another user's part by path.
        f"{PREFIX}/u1/posts/g1/parts/../../../u2/posts/g1/parts/"
        "00000000000000000000-00000000000000000001/part-00001.jsonl.gz",
        f"{PREFIX}/u1/posts/g1/parts/leftover.jsonl.gz",
        f"{PREFIX}/u1/posts/g1/parts/00000000000000000000-00000000000000000001/part-00001.jsonl",
        f"{PREFIX}/u1/posts/g10/parts/00000000000000000000-00000000000000000001/part-00001.jsonl.gz",
    ],
)
def test_a_manifest_listing_a_key_that_is_not_a_part_of_its_stream_is_refused(
    bucket, store, stream, key
):
    hostile = stream.deliver_raw(part_of(GOOD), key=key)

    report = consume(bucket, store, prefix=PREFIX)

    assert refusal(report) == (
        hostile.key,
        f"{hostile.key}: lists {key!r}, which is not a part of u1/posts/g1",
    )


def test_a_manifest_naming_a_member_twice_is_refused(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 5)))
    text = bucket.objects[delivered.key]
    bucket.objects[delivered.key] = text.replace(b'"reset": true', b'"reset": true, "reset": false')

    report = consume(bucket, store, prefix=PREFIX)

    key, message = refusal(report)
    assert key == delivered.key
    assert "'reset' appears twice" in message


@pytest.mark.parametrize("user_id", ["U1", "con", "a\x00b", "...", "a:b*?<>|\\", "x" * 300, "é"])
def test_jsonl_snapshots_of_hostile_user_ids_get_safe_distinct_names(bucket, tmp_path, user_id):
    for user in ("u1", user_id):
        ExportWriter(bucket, prefix=PREFIX, user_id=user).deliver(list(changes("posts", user, 2)))

    with JsonlStore(tmp_path / "c.db", tmp_path / "out") as jsonl:
        report = consume(bucket, jsonl, prefix=PREFIX)

    assert report.ok, report.problems
    files = sorted(p.name for p in (tmp_path / "out" / "posts").iterdir())
    assert files == sorted([snapshot_name("u1"), snapshot_name(user_id)])
    assert len({name.lower() for name in files}) == 2
    for name in files:
        assert len(name) <= 80
        assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}
        rows = [
            orjson.loads(line)
            for line in (tmp_path / "out" / "posts" / name).read_bytes().splitlines()
        ]
        assert {row["user_id"] for row in rows} in ({"u1"}, {user_id})
