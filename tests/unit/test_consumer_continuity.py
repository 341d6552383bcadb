"""Manifests chain by sequence and checkpoint; a gap stops its stream, a replay restarts it."""

from __future__ import annotations

from portability.consumer import StreamId, consume
from tests.fixtures.consumer import PREFIX, STREAM, id_range, ids
from tests.fixtures.exports import ExportWriter, changes


def test_a_missing_manifest_is_reported_as_a_gap_and_stops_the_stream(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))
    stream.deliver(list(changes("posts", "u1", 10, start=10)), write_manifest=False)
    third = stream.deliver(list(changes("posts", "u1", 10, start=20)))

    report = consume(bucket, store, prefix=PREFIX)

    assert [(p.kind, p.key) for p in report.problems] == [("gap", third.key)]
    assert "manifest 2 of this stream not found" in report.problems[0].message
    assert ids(store) == id_range(0, 10)
    assert store.position(STREAM).sequence == 1
    assert (len(report.applied), report.pending) == (1, 1)


def test_a_gap_in_one_stream_does_not_stop_the_others(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 5)), write_manifest=False)
    stream.deliver(list(changes("posts", "u1", 5, start=5)))
    other = ExportWriter(bucket, prefix=PREFIX, user_id="u2", category="posts")
    other.deliver(list(changes("posts", "u2", 7)))

    report = consume(bucket, store, prefix=PREFIX)

    assert [(p.stream, p.kind) for p in report.problems] == [(STREAM, "gap")]
    assert "manifest 1 of this stream not found" in report.problems[0].message
    assert ids(store, "u2") == id_range(0, 7, "u2")
    assert ids(store) == set()


def test_several_missing_manifests_are_named_as_a_range(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 5)))
    consume(bucket, store, prefix=PREFIX)
    for start in (5, 10, 15):
        stream.deliver(list(changes("posts", "u1", 5, start=start)), write_manifest=False)
    stream.deliver(list(changes("posts", "u1", 5, start=20)))

    report = consume(bucket, store, prefix=PREFIX)

    assert "manifests 2..4 of this stream not found" in report.problems[0].message


def test_a_checkpoint_range_that_does_not_continue_the_previous_one_is_a_gap(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))  # checkpoint 0..10
    jumped = stream.deliver(list(changes("posts", "u1", 10, start=10)), from_watermark=15)

    report = consume(bucket, store, prefix=PREFIX)

    assert [(p.kind, p.key) for p in report.problems] == [("gap", jumped.key)]
    assert (
        "starts at position 15:15:, the previous manifest ended at 10:10:"
        in report.problems[0].message
    )
    assert ids(store) == id_range(0, 10)


def test_a_gap_is_applied_past_once_the_missing_manifest_arrives(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))
    late = stream.deliver(list(changes("posts", "u1", 10, start=10)), write_manifest=False)
    stream.deliver(list(changes("posts", "u1", 10, start=20)))
    assert not consume(bucket, store, prefix=PREFIX).ok

    bucket.put_object(late.key, late.manifest.to_json())
    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert [a.sequence for a in report.applied] == [2, 3]
    assert ids(store) == id_range(0, 30)


def test_a_reset_manifest_replaces_what_is_held_for_the_user_and_category(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 20)))
    consume(bucket, store, prefix=PREFIX)
    # A checkpoint reset on our side: the stream is replayed from the beginning, and the
    # replay no longer holds records 0..9 (deleted while the stream was being reset).
    replay = stream.deliver(list(changes("posts", "u1", 15, start=10)), reset=True)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert [(a.sequence, a.is_full_replay) for a in report.applied] == [(2, True)]
    assert ids(store) == id_range(10, 15)
    assert store.position(STREAM).position_to == replay.manifest.position.to


def test_a_reset_manifest_heals_a_gap_before_it(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))
    consume(bucket, store, prefix=PREFIX)
    stream.deliver(list(changes("posts", "u1", 10, start=10)), write_manifest=False)
    stream.deliver(list(changes("posts", "u1", 10, start=20)))
    stream.deliver(list(changes("posts", "u1", 30)), reset=True)

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert [a.sequence for a in report.applied] == [4]
    assert report.superseded == 1  # manifest 3 is covered by the replay
    assert ids(store) == id_range(0, 30)


def test_manifests_after_a_reset_continue_from_the_reset(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))
    stream.deliver(list(changes("posts", "u1", 4)), reset=True)
    stream.deliver(list(changes("posts", "u1", 3, start=100)))

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert [a.sequence for a in report.applied] == [2, 3]
    assert report.superseded == 1
    assert ids(store) == id_range(0, 4) | id_range(100, 3)


def test_a_new_grant_starting_at_zero_replaces_the_previous_grants_records(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))
    consume(bucket, store, prefix=PREFIX)
    regranted = ExportWriter(bucket, prefix=PREFIX, user_id="u1", category="posts", grant_id=2)
    regranted.deliver(list(changes("posts", "u1", 6, start=4)))

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert ids(store) == id_range(4, 6)
    assert store.position(StreamId("u1", "posts", 2)).sequence == 1


def test_a_refused_replay_leaves_the_held_records_untouched(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 10)))
    consume(bucket, store, prefix=PREFIX)
    replay = stream.deliver(list(changes("posts", "u1", 3)), reset=True)
    key = replay.manifest.parts[0].key
    body = bucket.objects[key]
    bucket.objects[key] = body[:-1] + bytes([body[-1] ^ 1])

    report = consume(bucket, store, prefix=PREFIX)

    assert [p.key for p in report.problems] == [key]
    assert ids(store) == id_range(0, 10)  # the clearing was rolled back with the rest
