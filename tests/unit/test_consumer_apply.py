"""The consumer applies manifested records in order, exactly once, into its local store."""

from __future__ import annotations

import gzip
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from portability.consumer import (
    JsonlStore,
    SqliteStore,
    StreamId,
    consume,
    iter_lines,
    snapshot_name,
)
from portability.consumer._apply import apply_manifest
from portability.consumer._fetch import PartFetcher
from portability.errors import ConflictError
from portability.manifest import PartEntry, PositionRange
from tests.fixtures.consumer import PREFIX, expected_state, state
from tests.fixtures.exports import changes, record_data


@pytest.fixture
def records_per_part() -> int:
    """These tests were written against parts of 40 records."""
    return 40


def test_a_delivery_becomes_the_users_current_records(bucket, store, new_stream):
    first = list(changes("posts", "u1", 100))
    new_stream().deliver(first)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert (len(report.applied), report.records) == (1, 100)
    assert state(store, "posts", "u1") == expected_state(first)


def test_updates_and_tombstones_apply_in_delivery_order(bucket, store, stream):
    first = list(changes("posts", "u1", 90))
    # ids cycle over 30 records: each is updated, and every 4th change deletes one
    second = list(changes("posts", "u1", 120, start=90, distinct=30, delete_every=4))
    stream.deliver(first)
    stream.deliver(second)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert sum(a.deletes for a in report.applied) == 30
    assert state(store, "posts", "u1") == expected_state(first, second)


def test_running_again_applies_only_new_manifests(bucket, store, stream):
    first = list(changes("posts", "u1", 50))
    stream.deliver(first)
    consume(bucket, store, prefix=PREFIX)

    again = consume(bucket, store, prefix=PREFIX)
    second = list(changes("posts", "u1", 10, start=50))
    stream.deliver(second)
    later = consume(bucket, store, prefix=PREFIX)

    assert (len(again.applied), again.already_applied) == (0, 1)
    assert [(a.sequence, a.records) for a in later.applied] == [(2, 10)]
    assert state(store, "posts", "u1") == expected_state(first, second)


def test_a_fresh_process_resumes_from_the_stored_position(bucket, tmp_path, stream):
    stream.deliver(list(changes("posts", "u1", 20)))
    with SqliteStore(tmp_path / "c.db") as first_process:
        consume(bucket, first_process, prefix=PREFIX)
    stream.deliver(list(changes("posts", "u1", 5, start=20)))

    with SqliteStore(tmp_path / "c.db") as second_process:
        report = consume(bucket, second_process, prefix=PREFIX)
        position = second_process.position(StreamId("u1", "posts", 1))

    assert [a.sequence for a in report.applied] == [2]
    assert position is not None
    assert (position.sequence, position.position_to) == (2, "25:25:")


def test_applying_a_manifest_that_is_already_applied_changes_nothing(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 30, distinct=10, delete_every=7)))
    consume(bucket, store, prefix=PREFIX)
    before = state(store, "posts", "u1")

    # A second consumer that planned from the old position (none) tries the same manifest:
    # the store's position check refuses it inside the transaction.
    with ThreadPoolExecutor(4) as pool, pytest.raises(ConflictError):
        apply_manifest(
            store,
            StreamId("u1", "posts", 1),
            delivered.manifest,
            delivered.key,
            None,
            fetcher=PartFetcher(bucket, pool),
            pool=pool,
        )

    assert state(store, "posts", "u1") == before
    assert store.position(StreamId("u1", "posts", 1)).manifest_key == delivered.key


def test_every_category_lands_in_its_own_table(bucket, store, new_stream):
    expected = {}
    for category in ("profile", "posts", "activity", "direct_messages"):
        items = list(changes(category, "u1", 12))
        new_stream(category=category).deliver(items)
        expected[category] = expected_state(items)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert {c: state(store, c, "u1") for c in expected} == expected
    assert store.count("profile") == 1  # a profile has one record: the user


def test_users_and_grants_are_separate_streams(bucket, store, new_stream):
    alice = list(changes("posts", "alice", 10))
    bob = list(changes("posts", "bob", 7))
    new_stream(user_id="alice", grant_id=3).deliver(alice)
    new_stream(user_id="bob", grant_id=4).deliver(bob)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.streams == 2
    assert state(store, "posts", "alice") == expected_state(alice)
    assert state(store, "posts", "bob") == expected_state(bob)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_parts_are_decompressed_as_the_manifest_says(bucket, store, compression, new_stream):
    items = list(changes("activity", "u1", 75))
    new_stream(category="activity", compression=compression).deliver(items)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert state(store, "activity", "u1") == expected_state(items)


def test_a_part_of_several_gzip_members_is_read_whole():
    lines = [orjson.dumps({"n": n}) for n in range(5)]
    body = gzip.compress(b"\n".join(lines[:2]) + b"\n") + gzip.compress(
        b"\n".join(lines[2:]) + b"\n"
    )

    read = [line for chunk in iter_lines(body, "gzip") for line in chunk]

    assert read == lines


def test_lines_split_across_decompressed_chunks_are_rejoined(monkeypatch):
    from portability.consumer import _blocks

    monkeypatch.setattr(_blocks, "CHUNK_BYTES", 7)
    lines = [orjson.dumps({"id": f"r{n}", "pad": "x" * n}) for n in range(30)]
    body = gzip.compress(b"\n".join(lines) + b"\n")

    read = [line for chunk in iter_lines(body, "gzip") for line in chunk]

    assert read == lines


def test_a_manifest_with_no_parts_only_moves_the_position(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 5)))
    stream.deliver([])  # a run that found nothing new still advances the checkpoint

    report = consume(bucket, store, prefix=PREFIX)

    assert [(a.sequence, a.parts, a.records) for a in report.applied] == [(1, 1, 5), (2, 0, 0)]
    assert store.position(StreamId("u1", "posts", 1)).sequence == 2


def test_jsonl_format_writes_a_current_state_snapshot_per_user_and_category(
    bucket, tmp_path, stream
):
    first = list(changes("posts", "u1", 40))
    second = list(changes("posts", "u1", 20, start=40, distinct=10, delete_every=3))
    stream.deliver(first)
    stream.deliver(second)

    with JsonlStore(tmp_path / "c.db", tmp_path / "out") as store:
        consume(bucket, store, prefix=PREFIX)
        snapshot = (tmp_path / "out" / "posts" / snapshot_name("u1")).read_bytes().splitlines()

    rows = [orjson.loads(line) for line in snapshot]
    expected = expected_state(first, second)
    assert [row["id"] for row in rows] == sorted(expected)
    assert {row["id"]: row["data"] for row in rows} == expected
    assert {row["user_id"] for row in rows} == {"u1"}


def test_jsonl_snapshot_due_before_a_crash_is_written_by_the_next_pass(
    bucket, tmp_path, new_stream
):
    new_stream().deliver(list(changes("posts", "u1", 8)))
    with JsonlStore(tmp_path / "c.db", tmp_path / "out") as store:
        store.finish_pass = lambda: None  # the process dies before writing the snapshot
        consume(bucket, store, prefix=PREFIX)
    assert not (tmp_path / "out" / "posts" / snapshot_name("u1")).exists()

    with JsonlStore(tmp_path / "c.db", tmp_path / "out") as store:
        report = consume(bucket, store, prefix=PREFIX)

    assert report.applied == []
    assert len((tmp_path / "out" / "posts" / snapshot_name("u1")).read_bytes().splitlines()) == 8


def test_progress_is_reported_after_every_part(bucket, store, new_stream):
    new_stream(records_per_part=10).deliver(list(changes("posts", "u1", 35)))
    seen = []

    consume(bucket, store, prefix=PREFIX, on_progress=seen.append)

    assert [(p.parts_done, p.parts_total, p.records_done) for p in seen] == [
        (1, 4, 10),
        (2, 4, 20),
        (3, 4, 30),
        (4, 4, 35),
    ]


def test_an_upsert_whose_data_is_not_an_object_is_refused(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 3)))
    key = f"{stream.stream}parts/0123456789abcdef/part-00001.jsonl.gz"
    line = b'{"id":"x","op":"upsert","changed_at":"2025-01-01T00:00:00.000000Z","data":[1]}\n'
    body = gzip.compress(line)
    bucket.put_object(key, body)
    part = PartEntry(
        key=key,
        records=1,
        upserts=1,
        deletes=0,
        bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
    )
    manifest = stream.delivered[0].manifest.model_copy(
        update={
            "sequence": 2,
            "position": PositionRange(from_="3:3:", to="4:4:"),
            "reset": False,
            "replay_reason": None,
            "parts": [part],
            "records": 1,
            "bytes": len(body),
        }
    )
    bucket.put_object(f"{stream.stream}manifests/0000000002.json", manifest.to_json())

    report = consume(bucket, store, prefix=PREFIX)

    assert [(p.kind, p.key) for p in report.problems] == [("integrity", key)], report.problems
    assert "line 1" in report.problems[0].message
    assert store.position(StreamId("u1", "posts", 1)).sequence == 1


def test_record_data_builds_every_published_shape():
    # Guards the fixture itself: the schemas test relies on these shapes.
    assert set(record_data("posts", "p1", "u1")) == {
        "id",
        "caption",
        "hashtags",
        "video",
        "privacy",
        "like_count",
        "created_at",
        "updated_at",
    }


def test_the_documented_sqlite_query_reads_the_store(bucket, store, new_stream):
    root = Path(__file__).resolve().parents[2]
    texts = [
        p.read_text() for p in (root / "README.md", root / "docs" / "consumer.md") if p.exists()
    ]
    text = next(t for t in texts if "<!-- sqlite:posts -->" in t)
    query = re.search(r"<!-- sqlite:posts -->\s*```sql\n(.*?)```", text, re.S).group(1)
    new_stream(user_id="u-1001").deliver(list(changes("posts", "u-1001", 5)))
    consume(bucket, store, prefix=PREFIX)

    rows = store._conn.execute(query).fetchall()

    assert len(rows) == 5
    assert rows[0][1].startswith("post ") and rows[0][2] >= 15_000
