"""Parts are read ahead of their use, within a budget, and only what is taken counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from portability.consumer._fetch import PartFetcher
from portability.consumer._layout import scan
from portability.consumer._plan import plan_streams, upcoming_parts
from portability.consumer._verify import RefusedObjectError
from portability.destinations.memory import MemoryDestination
from tests.fixtures.exports import ExportWriter, changes


@pytest.fixture
def pool():
    with ThreadPoolExecutor(4) as executor:
        yield executor


def gets(bucket: MemoryDestination) -> list[str]:
    return [key for op, key in bucket.operations if op == "get"]


def test_the_fetcher_reads_ahead_at_most_its_count_of_parts(pool):
    bucket = MemoryDestination()
    parts = ExportWriter(bucket, records_per_part=5).deliver(list(changes("posts", "u1", 50)))
    key = parts.key
    fetcher = PartFetcher(bucket, pool, ahead=2)

    fetcher.expect(iter([(part, key) for part in parts.manifest.parts]))
    first = fetcher.take(parts.manifest.parts[0], key)
    pool.shutdown(wait=True)  # let the reads in flight land before counting them

    assert first == bucket.objects[parts.manifest.parts[0].key]
    assert sorted(gets(bucket)) == [p.key for p in parts.manifest.parts[:3]]


def test_the_byte_budget_holds_back_reading_ahead(pool):
    bucket = MemoryDestination()
    parts = ExportWriter(bucket, records_per_part=5).deliver(list(changes("posts", "u1", 50)))
    fetcher = PartFetcher(bucket, pool, ahead=8, budget_bytes=1)

    fetcher.expect(iter([(part, parts.key) for part in parts.manifest.parts]))
    fetcher.take(parts.manifest.parts[0], parts.key)
    pool.shutdown(wait=True)

    assert len(gets(bucket)) == 2  # the one taken and one ahead, never more


def test_a_part_announced_but_not_needed_is_dropped(pool):
    bucket = MemoryDestination()
    first = ExportWriter(bucket, user_id="u1", records_per_part=5).deliver(
        list(changes("posts", "u1", 10))
    )
    second = ExportWriter(bucket, user_id="u2", records_per_part=5).deliver(
        list(changes("posts", "u2", 10))
    )
    announced = [(p, first.key) for p in first.manifest.parts] + [
        (p, second.key) for p in second.manifest.parts
    ]
    fetcher = PartFetcher(bucket, pool, ahead=4)
    fetcher.expect(iter(announced))

    # u1's stream stopped after its first part: the consumer goes on with u2
    body = fetcher.take(second.manifest.parts[0], second.key)

    assert body == bucket.objects[second.manifest.parts[0].key]


def test_a_part_that_differs_from_its_manifest_is_refused_when_taken(pool):
    bucket = MemoryDestination()
    delivered = ExportWriter(bucket).deliver(list(changes("posts", "u1", 10)))
    part = delivered.manifest.parts[0]
    bucket.objects[part.key] += b"!"
    fetcher = PartFetcher(bucket, pool)
    fetcher.expect(iter([(part, delivered.key)]))

    with pytest.raises(RefusedObjectError) as caught:
        fetcher.take(part, delivered.key)

    assert caught.value.key == part.key


def test_upcoming_parts_stop_where_a_gap_will_stop_the_stream(pool):
    bucket = MemoryDestination()
    stream = ExportWriter(bucket, prefix="x", records_per_part=5)
    one = stream.deliver(list(changes("posts", "u1", 10)))
    stream.deliver(list(changes("posts", "u1", 5, start=10)), write_manifest=False)
    stream.deliver(list(changes("posts", "u1", 5, start=15)))
    plans = plan_streams(bucket, "x", scan(bucket, "x").manifests, {}, pool)

    assert [p.key for p, _ in upcoming_parts(plans, set())] == [p.key for p in one.manifest.parts]
