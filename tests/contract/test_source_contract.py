"""The ``Source`` contract, checked once for every implementation (memory, SQLite, PostgreSQL).

The ``feed`` fixture (tests/fixtures/platform.py) commits changes with ``feed.write`` and reads
them back through ``feed.source`` between positions (``feed.source.position()``), and reads the
current state with ``read_state``.
"""

from __future__ import annotations

import time
from itertools import pairwise

import orjson
import pytest

from portability.categories import Category
from portability.errors import ValidationError
from portability.sources.base import ChangeBatch, Source
from tests.fixtures.platform import ORIGIN, FeedHarness, read_all, read_state

U1, U2 = "u000001", "u000002"
POSTS = Category.POSTS


def concurrent_writers(feed: FeedHarness) -> None:
    """SQLite has one writer at a time: no transaction commits while another is open there,
    so the late-commit cases cannot arise on it."""
    if feed.kind == "sqlite":
        pytest.skip("SQLite: one writer at a time, no transaction can commit beside another")


def ids(lines: list[str]) -> list[tuple[str, str]]:
    return [(record["id"], record["op"]) for record in map(orjson.loads, lines)]


def test_every_implementation_is_a_source(feed: FeedHarness) -> None:
    assert isinstance(feed.source, Source)


def test_reads_changes_in_commit_order_with_inserts_in_write_order(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1", "p2"])
    feed.write(U1, POSTS, upserts=["p3"], deletes=["p1"])
    feed.write(U1, POSTS, upserts=["p2"])
    now = feed.source.position()

    assert ids(read_all(feed.source, U1, POSTS, None, now)) == [
        ("p1", "upsert"),
        ("p2", "upsert"),
        ("p3", "upsert"),
        ("p1", "delete"),
        ("p2", "upsert"),
    ]


def test_a_read_covers_exactly_what_the_later_position_adds(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1"])
    first = feed.source.position()
    feed.write(U1, POSTS, upserts=["p2"])
    second = feed.source.position()
    feed.write(U1, POSTS, upserts=["p3"])
    third = feed.source.position()

    assert ids(read_all(feed.source, U1, POSTS, None, first)) == [("p1", "upsert")]
    assert ids(read_all(feed.source, U1, POSTS, first, second)) == [("p2", "upsert")]
    assert ids(read_all(feed.source, U1, POSTS, second, third)) == [("p3", "upsert")]
    assert read_all(feed.source, U1, POSTS, third, third) == []


def test_consecutive_positions_see_each_change_exactly_once(feed: FeedHarness) -> None:
    marks = [ORIGIN]
    for n in range(5):
        feed.write(U1, POSTS, upserts=[f"p{n}a", f"p{n}b"])
        marks.append(feed.source.position())
    seen = [
        record_id
        for lo, hi in pairwise(marks)
        for record_id, _op in ids(read_all(feed.source, U1, POSTS, lo, hi))
    ]
    assert seen == [f"p{n}{x}" for n in range(5) for x in "ab"]


def test_batches_never_exceed_batch_size_and_keep_order(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=[f"p{n:02d}" for n in range(10)])
    now = feed.source.position()

    batches = list(feed.source.read_changes(U1, POSTS, ORIGIN, now, 3))

    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert all(isinstance(b, ChangeBatch) for b in batches)
    assert [i for b in batches for i, _ in ids(b.lines)] == [f"p{n:02d}" for n in range(10)]


def test_exact_multiple_of_batch_size_yields_no_empty_batch(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=[f"p{n}" for n in range(4)])
    now = feed.source.position()

    assert [len(b) for b in feed.source.read_changes(U1, POSTS, ORIGIN, now, 2)] == [2, 2]


def test_deletes_are_counted_and_travel_as_tombstones(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1", "p2", "p3"])
    feed.write(U1, POSTS, deletes=["p1", "p3"])
    now = feed.source.position()

    batches = list(feed.source.read_changes(U1, POSTS, ORIGIN, now, 2))

    assert [b.deletes for b in batches] == [0, 1, 1]
    tombstones = [r for b in batches for r in map(orjson.loads, b.lines) if r["op"] == "delete"]
    assert [(t["id"], t["data"]) for t in tombstones] == [("p1", None), ("p3", None)]


def test_upserts_ending_in_a_null_field_are_not_counted_as_deletes(feed: FeedHarness) -> None:
    feed.write(U1, Category.DIRECT_MESSAGES, upserts=["m1", "m2"])  # "edited_at": null is last
    feed.write(U1, Category.DIRECT_MESSAGES, deletes=["m1"])
    now = feed.source.position()

    batches = list(feed.source.read_changes(U1, Category.DIRECT_MESSAGES, ORIGIN, now, 10))

    assert [(len(b), b.deletes) for b in batches] == [(3, 1)]


def test_rereading_between_two_positions_gives_identical_lines(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1", "p2"])
    feed.write(U1, POSTS, upserts=["p1"], deletes=["p2"])
    now = feed.source.position()

    first = read_all(feed.source, U1, POSTS, None, now, size=1)
    feed.write(U1, POSTS, upserts=["p9"])  # later changes do not touch the range
    second = read_all(feed.source, U1, POSTS, None, now, size=1000)

    assert first == second
    assert len(first) == 4


def test_other_users_and_categories_are_not_mixed_in(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1"])
    feed.write(U2, POSTS, upserts=["q1"])
    feed.write(U1, Category.ACTIVITY, upserts=["a1"])
    now = feed.source.position()

    assert ids(read_all(feed.source, U1, POSTS, None, now)) == [("p1", "upsert")]
    assert ids(read_all(feed.source, U2, POSTS, None, now)) == [("q1", "upsert")]
    assert ids(read_all(feed.source, U1, Category.ACTIVITY, None, now)) == [("a1", "upsert")]
    assert read_all(feed.source, U2, Category.ACTIVITY, None, now) == []


def test_a_late_commit_is_delivered_once_by_the_next_read_after_it(feed: FeedHarness) -> None:
    concurrent_writers(feed)
    feed.write(U1, POSTS, upserts=["p1"])
    with feed.open_transaction(U1, POSTS, upserts=["p2"]):  # takes its id before p3's
        feed.write(U1, POSTS, upserts=["p3"])
        started = time.monotonic()
        during = feed.source.position()
        seen = ids(read_all(feed.source, U1, POSTS, None, during))
        assert time.monotonic() - started < 5, "a reader waited for the writer"
    after = feed.source.position()
    later = feed.source.position()

    assert seen == [("p1", "upsert"), ("p3", "upsert")]
    assert ids(read_all(feed.source, U1, POSTS, during, after)) == [("p2", "upsert")]
    assert read_all(feed.source, U1, POSTS, after, later) == []


def test_a_transaction_that_wrote_nothing_to_the_feed_delays_nothing(feed: FeedHarness) -> None:
    with feed.idle_transaction():
        feed.write(U1, POSTS, upserts=["p1"])
        now = feed.source.position()
        assert ids(read_all(feed.source, U1, POSTS, None, now)) == [("p1", "upsert")]


def test_positions_never_move_backwards(feed: FeedHarness) -> None:
    marks = [feed.source.position()]
    for n in range(3):
        feed.write(U1, POSTS, upserts=[f"p{n}"])
        marks.append(feed.source.position())
    assert all(later.covers(earlier) for earlier, later in pairwise(marks))


def test_zero_batch_size_is_refused(feed: FeedHarness) -> None:
    now = feed.source.position()
    with pytest.raises(ValidationError, match="batch size"):
        list(feed.source.read_changes(U1, POSTS, ORIGIN, now, 0))
    with pytest.raises(ValidationError, match="batch size"), feed.source.read_state(U1, POSTS, 0):
        pass


def test_the_state_holds_each_current_record_once_and_no_deleted_one(feed: FeedHarness) -> None:
    feed.write(U1, POSTS, upserts=["p1", "p2", "p3"])
    feed.write(U1, POSTS, upserts=["p2"], deletes=["p1"])
    feed.write(U1, POSTS, upserts=["p2"])
    feed.write(U2, POSTS, upserts=["q1"])

    lines, _ = read_state(feed.source, U1, POSTS, size=1)

    assert sorted(ids(lines)) == [("p2", "upsert"), ("p3", "upsert")]


def test_the_state_and_the_changes_after_its_position_meet_without_loss_or_double(
    feed: FeedHarness,
) -> None:
    concurrent_writers(feed)
    feed.write(U1, POSTS, upserts=["p1", "p2"])
    with feed.open_transaction(U1, POSTS, upserts=["p3"]):
        feed.write(U1, POSTS, upserts=["p4"], deletes=["p1"])
        lines, position = read_state(feed.source, U1, POSTS)
    feed.write(U1, POSTS, upserts=["p5"])
    now = feed.source.position()

    assert sorted(ids(lines)) == [("p2", "upsert"), ("p4", "upsert")]
    assert sorted(ids(read_all(feed.source, U1, POSTS, position, now))) == [
        ("p3", "upsert"),
        ("p5", "upsert"),
    ]


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
    now = feed.source.position()

    (line,) = read_all(feed.source, U1, POSTS, None, now)
    assert orjson.loads(line)["data"]["caption"] == caption
    (batch,) = feed.source.read_changes(U1, POSTS, ORIGIN, now, 10)
    assert batch.body == line.encode() + b"\n"
    (state_line,), _ = read_state(feed.source, U1, POSTS)
    assert state_line == line
