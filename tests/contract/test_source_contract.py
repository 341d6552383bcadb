"""The ``Source`` contract, checked once for every implementation (memory, SQLite, PostgreSQL).

The ``feed`` fixture (tests/fixtures/platform.py) commits changes with ``feed.write`` and reads
them back through ``feed.source``; ``feed.settled_watermark()`` waits until the watermark has
passed everything committed (on a shared PostgreSQL, other sessions can hold it back).
"""

from __future__ import annotations

import time
from itertools import pairwise

import orjson
import pytest

from portability.categories import Category
from portability.errors import ValidationError
from portability.sources.base import ChangeBatch, Source
from tests.fixtures.platform import FeedHarness, read_all

U1, U2 = "u000001", "u000002"
POSTS = Category.POSTS


def ids(lines: list[str]) -> list[tuple[str, str]]:
    return [(record["id"], record["op"]) for record in map(orjson.loads, lines)]


def test_every_implementation_is_a_source(feed: FeedHarness) -> None:
    assert isinstance(feed.source, Source)


def test_reads_changes_in_commit_order_with_inserts_in_write_order(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1", "p2"])
    feed.write(U1, POSTS, upserts=["p3"], deletes=["p1"])
    feed.write(U1, POSTS, upserts=["p2"])
    mark = feed.settled_watermark()

    assert ids(read_all(feed.source, U1, POSTS, 0, mark)) == [
        ("p1", "upsert"),
        ("p2", "upsert"),
        ("p3", "upsert"),
        ("p1", "delete"),
        ("p2", "upsert"),
    ]


def test_read_covers_exactly_the_half_open_range(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1"])
    first = feed.settled_watermark()
    feed.write(U1, POSTS, upserts=["p2"])
    second = feed.settled_watermark()
    feed.write(U1, POSTS, upserts=["p3"])
    third = feed.settled_watermark()

    assert ids(read_all(feed.source, U1, POSTS, 0, first)) == [("p1", "upsert")]
    assert ids(read_all(feed.source, U1, POSTS, first, second)) == [("p2", "upsert")]
    assert ids(read_all(feed.source, U1, POSTS, second, third)) == [("p3", "upsert")]
    assert read_all(feed.source, U1, POSTS, third, third) == []
    assert read_all(feed.source, U1, POSTS, third, first) == []


def test_consecutive_ranges_see_each_change_exactly_once(feed: FeedHarness) -> None:
    marks = [0]
    for n in range(5):
        feed.write(U1, POSTS, upserts=[f"p{n}a", f"p{n}b"])
        marks.append(feed.settled_watermark())
    seen = [
        record_id
        for lo, hi in pairwise(marks)
        for record_id, _op in ids(read_all(feed.source, U1, POSTS, lo, hi))
    ]
    assert seen == [f"p{n}{x}" for n in range(5) for x in "ab"]


def test_batches_never_exceed_batch_size_and_keep_order(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=[f"p{n:02d}" for n in range(10)])
    mark = feed.settled_watermark()

    batches = list(feed.source.read(U1, POSTS, 0, mark, 3))

    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert all(isinstance(b, ChangeBatch) for b in batches)
    assert [i for b in batches for i, _ in ids(b.lines)] == [f"p{n:02d}" for n in range(10)]


def test_exact_multiple_of_batch_size_yields_no_empty_batch(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=[f"p{n}" for n in range(4)])
    mark = feed.settled_watermark()

    assert [len(b) for b in feed.source.read(U1, POSTS, 0, mark, 2)] == [2, 2]


def test_deletes_are_counted_and_travel_as_tombstones(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1", "p2", "p3"])
    feed.write(U1, POSTS, deletes=["p1", "p3"])
    mark = feed.settled_watermark()

    batches = list(feed.source.read(U1, POSTS, 0, mark, 2))

    assert [b.deletes for b in batches] == [0, 1, 1]
    tombstones = [r for b in batches for r in map(orjson.loads, b.lines) if r["op"] == "delete"]
    assert [(t["id"], t["data"]) for t in tombstones] == [("p1", None), ("p3", None)]


def test_upserts_ending_in_a_null_field_are_not_counted_as_deletes(feed: FeedHarness) -> None:
    feed.write(U1, Category.DIRECT_MESSAGES, upserts=["m1", "m2"])  # "edited_at": null is last
    feed.write(U1, Category.DIRECT_MESSAGES, deletes=["m1"])
    mark = feed.settled_watermark()

    batches = list(feed.source.read(U1, Category.DIRECT_MESSAGES, 0, mark, 10))

    assert [(len(b), b.deletes) for b in batches] == [(3, 1)]


def test_rereading_a_range_gives_identical_lines(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1", "p2"])
    feed.write(U1, POSTS, upserts=["p1"], deletes=["p2"])
    mark = feed.settled_watermark()

    first = read_all(feed.source, U1, POSTS, 0, mark, size=1)
    feed.write(U1, POSTS, upserts=["p9"])  # later changes do not touch the settled range
    second = read_all(feed.source, U1, POSTS, 0, mark, size=1000)

    assert first == second
    assert len(first) == 4


def test_other_users_and_categories_are_not_mixed_in(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1"])
    feed.write(U2, POSTS, upserts=["q1"])
    feed.write(U1, Category.ACTIVITY, upserts=["a1"])
    mark = feed.settled_watermark()

    assert ids(read_all(feed.source, U1, POSTS, 0, mark)) == [("p1", "upsert")]
    assert ids(read_all(feed.source, U2, POSTS, 0, mark)) == [("q1", "upsert")]
    assert ids(read_all(feed.source, U1, Category.ACTIVITY, 0, mark)) == [("a1", "upsert")]
    assert read_all(feed.source, U2, Category.ACTIVITY, 0, mark) == []


def test_an_open_transaction_neither_blocks_readers_nor_shows_its_changes(
    feed: FeedHarness,
) -> None:
    feed.write(U1, POSTS, upserts=["p1"])
    committed = feed.settled_watermark()

    with feed.open_transaction(U1, POSTS, upserts=["p2"]):
        started = time.monotonic()
        during = feed.source.watermark()
        seen = ids(read_all(feed.source, U1, POSTS, 0, during))
        unsettled = read_all(feed.source, U1, POSTS, committed, during)
        assert time.monotonic() - started < 5, "a reader waited for the writer"
    after = feed.settled_watermark()

    assert (seen, unsettled) == ([("p1", "upsert")], [])
    assert ids(read_all(feed.source, U1, POSTS, during, after)) == [("p2", "upsert")]


def test_watermark_never_moves_backwards(feed: FeedHarness) -> None:
    marks = [feed.source.watermark()]
    for n in range(3):
        feed.write(U1, POSTS, upserts=[f"p{n}"])
        marks.append(feed.source.watermark())
    assert marks == sorted(marks)


def test_zero_batch_size_is_refused(feed: FeedHarness) -> None:
    with pytest.raises(ValidationError, match="batch size"):
        list(feed.source.read(U1, POSTS, 0, 10, 0))


def test_text_with_escapes_quotes_and_unicode_reads_back_byte_for_byte(feed: FeedHarness) -> None:
    from portability.platform.store import write_changes
    from tests.fixtures.platform import make_record

    caption = 'back\\slash "quoted" line\nbreak\ttab \\n literal é 😀 \u2028 end\\'
    record = make_record(POSTS, "p9", U1, caption=caption)
    if feed.engine is None:
        with feed.source.begin() as tx:  # type: ignore[attr-defined]
            tx.upsert(U1, POSTS, "p9", record, feed._tick())
    else:
        with feed.engine.begin() as conn:
            write_changes(conn, U1, POSTS, upserts={"p9": record}, changed_at=feed._tick())
    mark = feed.settled_watermark()

    (line,) = read_all(feed.source, U1, POSTS, 0, mark)
    assert orjson.loads(line)["data"]["caption"] == caption
    (batch,) = feed.source.read(U1, POSTS, 0, mark, 10)
    assert batch.body == line.encode() + b"\n"
