"""Manifest keys name their stream and sequence; anything else is just another object."""

from __future__ import annotations

import pytest

from portability.consumer import StreamId
from portability.consumer._layout import parse_manifest_key, part_key_pattern, sort_keys
from portability.manifest import manifest_key, part_key, stream_prefix
from portability.sources.position import Position


@pytest.mark.parametrize("prefix", ["", "exports", "/exports/", "a/b"])
def test_a_manifest_key_built_by_the_layout_parses_back_to_its_stream(prefix):
    key = manifest_key(stream_prefix(prefix, "u-42", "direct_messages", 9), 12)

    assert parse_manifest_key(prefix, key) == (StreamId("u-42", "direct_messages", 9), 12)


@pytest.mark.parametrize(
    "key",
    [
        "exports/u1/posts/g1/manifests/1.json",  # not zero-padded
        "exports/u1/posts/g1/manifests/0000000000.json",  # sequences start at 1
        "exports/u1/posts/g1/manifests/0000000001.json.tmp",
        "exports/u1/posts/1/manifests/0000000001.json",  # grant without its g
        "exports/../posts/g1/manifests/0000000001.json",
        "other/u1/posts/g1/manifests/0000000001.json",  # outside the prefix
        "exports/u1/posts/g1/parts/00000000000000000000-00000000000000000001/part-00001.jsonl.gz",
    ],
)
def test_keys_that_are_not_canonical_manifest_keys_are_not_manifests(key):
    assert parse_manifest_key("exports", key) is None


def test_listing_sorts_manifests_by_stream_and_keeps_every_other_key():
    stream = stream_prefix("exports", "u1", "posts", 1)
    keys = [
        manifest_key(stream, 2),
        manifest_key(stream, 1),
        part_key(stream, None, Position.at(5), 1, "gzip"),
        "exports/notes.txt",
    ]

    listing = sort_keys("exports", keys)

    assert listing.manifests == {
        StreamId("u1", "posts", 1): {1: manifest_key(stream, 1), 2: manifest_key(stream, 2)}
    }
    assert listing.other_keys == {
        part_key(stream, None, Position.at(5), 1, "gzip"),
        "exports/notes.txt",
    }


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("prefix", ["", "exports", "a/b"])
def test_every_part_key_the_layout_builds_matches_its_streams_part_pattern(prefix, compression):
    folder = stream_prefix(prefix, "u-42", "posts", 9)

    key = part_key(folder, Position.at(120), Position.at(99_000), 3, compression)

    assert part_key_pattern(folder, compression).fullmatch(key)


@pytest.mark.parametrize(
    "key",
    [
        "exports/u1/posts/g1/parts/../../../u2/posts/g1/parts/"
        "00000000000000000000-00000000000000000001/part-00001.jsonl.gz",
        "exports/u2/posts/g1/parts/00000000000000000000-00000000000000000001/part-00001.jsonl.gz",
        "exports/u1/posts/g12/parts/00000000000000000000-00000000000000000001/part-00001.jsonl.gz",
        "exports/u1/posts/g1/parts/00000000000000000000-00000000000000000001/part-00001.jsonl",
        "exports/u1/posts/g1/parts/00000000000000000000-00000000000000000001/part-1.jsonl.gz",
        "exports/u1/posts/g1/parts/0-1/part-00001.jsonl.gz",
        "exports/u1/posts/g1/parts/00000000000000000000-00000000000000000001/part-00001.jsonl.gz\n",
        "exports/u1/posts/g1/parts/00000000000000000000-00000000000000000001/x/part-00001.jsonl.gz",
        "exports/u1/posts/g1/parts/leftover.jsonl.gz",
    ],
)
def test_a_key_of_any_other_shape_is_not_a_part_of_the_stream(key):
    folder = stream_prefix("exports", "u1", "posts", 1)

    assert part_key_pattern(folder, "gzip").fullmatch(key) is None


def test_a_user_id_with_pattern_characters_is_matched_literally():
    folder = stream_prefix("exports", "u.+*", "posts", 1)
    other = stream_prefix("exports", "uXYZ", "posts", 1)

    pattern = part_key_pattern(folder, "gzip")

    assert pattern.fullmatch(part_key(folder, None, Position.at(1), 1, "gzip"))
    assert pattern.fullmatch(part_key(other, None, Position.at(1), 1, "gzip")) is None
