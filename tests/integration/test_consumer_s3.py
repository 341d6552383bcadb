"""The consumer against a real S3 server (SeaweedFS over HTTP, signatures enforced).

The export is written by the synthetic writer in the published layout, so these tests pin the
consumer to the layout; the round trip through the real export engine lives with the engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portability.cli._errors import EXIT_FAILED
from portability.consumer import SqliteStore, consume, open_bucket
from portability.destinations.s3 import S3Destination
from portability.signing import new_signing_key_text, parse_signing_keys
from tests.fixtures.consumer import PREFIX, expected_state, state
from tests.fixtures.exports import ExportWriter, changes
from tests.fixtures.s3 import READER_ACCESS_KEY_ID, READER_SECRET_ACCESS_KEY, create_bucket

pytestmark = pytest.mark.services


@pytest.fixture
def bucket(s3_endpoint) -> str:
    """A fresh real bucket, by name (instead of the shared in-memory ``bucket``)."""
    return create_bucket(s3_endpoint)


@pytest.fixture
def writer_destination(s3_endpoint, bucket) -> S3Destination:
    return S3Destination(s3_endpoint.config(bucket))


def reader(s3_endpoint, bucket: str):
    """The bucket as a developer opens it: with read-only keys of their own."""
    return open_bucket(
        bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=READER_ACCESS_KEY_ID,
        secret_access_key=READER_SECRET_ACCESS_KEY,
        region=s3_endpoint.region,
    )


def test_round_trip_through_a_real_bucket_with_read_only_keys(
    s3_endpoint, bucket, writer_destination, tmp_path
):
    expected = {}
    for user_id in ("u-1", "u-2"):
        for category in ("posts", "direct_messages"):
            stream = ExportWriter(
                writer_destination,
                prefix=PREFIX,
                user_id=user_id,
                category=category,
                records_per_part=70,
                compression="gzip" if user_id == "u-1" else "zstd",
            )
            first = list(changes(category, user_id, 150))
            second = list(changes(category, user_id, 60, start=150, distinct=80, delete_every=5))
            stream.deliver(first)
            stream.deliver(second)
            expected[(user_id, category)] = expected_state(first, second)
    crashed = ExportWriter(writer_destination, prefix=PREFIX, user_id="u-1", checkpoint=210)
    crashed.deliver(list(changes("posts", "u-1", 9, start=900)), write_manifest=False)

    with SqliteStore(tmp_path / "consumer.db") as store:
        report = consume(reader(s3_endpoint, bucket), store, prefix=PREFIX)
        again = consume(reader(s3_endpoint, bucket), store, prefix=PREFIX)
        held = {key: state(store, key[1], key[0]) for key in expected}

    assert report.ok, report.problems
    assert (report.streams, len(report.applied), report.records) == (4, 8, 4 * 210)
    assert report.ignored_objects == 1
    assert held == expected
    assert (len(again.applied), again.already_applied, again.ignored_objects) == (0, 8, 1)


def test_listing_many_objects_spans_pages(s3_endpoint, bucket, writer_destination, tmp_path):
    stream = ExportWriter(writer_destination, prefix=PREFIX, user_id="u-1", records_per_part=3)
    for start in range(0, 60, 20):
        stream.deliver(list(changes("posts", "u-1", 20, start=start)))
    destination = reader(s3_endpoint, bucket)
    destination.list_page_size = 5  # 24 parts + 3 manifests: six pages

    with SqliteStore(tmp_path / "consumer.db") as store:
        report = consume(destination, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert (len(report.applied), report.records) == (3, 60)


def invoke(cli, s3_endpoint, bucket: str, store: Path, *extra: str):
    return cli(
        *[
            "consume",
            "--endpoint-url",
            s3_endpoint.endpoint_url,
            "--bucket",
            bucket,
            "--prefix",
            PREFIX,
            "--store",
            str(store),
            "--json",
            *extra,
        ],
        env={
            "AWS_ACCESS_KEY_ID": READER_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": READER_SECRET_ACCESS_KEY,
        },
    )


def test_the_cli_consumes_a_real_bucket_and_refuses_an_altered_part_by_key(
    cli, s3_endpoint, bucket, writer_destination, tmp_path
):
    stream = ExportWriter(writer_destination, prefix=PREFIX, user_id="u-1", records_per_part=40)
    stream.deliver(list(changes("posts", "u-1", 100)))
    first = invoke(cli, s3_endpoint, bucket, tmp_path / "c.db")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["records"] == 100

    second = stream.deliver(list(changes("posts", "u-1", 100, start=100)))
    altered = second.manifest.parts[1].key
    body = bytearray(writer_destination.get_object(altered))
    body[len(body) // 2] ^= 0x01
    writer_destination.put_object(altered, bytes(body))
    refused = invoke(cli, s3_endpoint, bucket, tmp_path / "c.db")

    assert refused.exit_code == EXIT_FAILED
    assert "stream(s) stopped" in refused.stderr
    report = json.loads(refused.stdout)
    assert [(p["kind"], p["key"]) for p in report["problems"]] == [("integrity", altered)]
    with SqliteStore(tmp_path / "c.db") as store:
        assert store.count("posts", "u-1") == 100  # nothing of manifest 2


def test_a_part_larger_than_its_manifest_says_is_refused_unread_from_a_real_bucket(
    s3_endpoint, bucket, writer_destination, tmp_path
):
    stream = ExportWriter(writer_destination, prefix=PREFIX, user_id="u-1", records_per_part=40)
    delivered = stream.deliver(list(changes("posts", "u-1", 80)))
    swollen = delivered.manifest.parts[1].key
    body = writer_destination.get_object(swollen)
    writer_destination.put_object(swollen, body + b"\x00" * (2 << 20))

    with SqliteStore(tmp_path / "consumer.db") as store:
        report = consume(reader(s3_endpoint, bucket), store, prefix=PREFIX)
        held = store.count("posts", "u-1")

    assert [(p.kind, p.key) for p in report.problems] == [("integrity", swollen)]
    assert "(not downloaded)" in report.problems[0].message
    assert held == 0


def test_verify_mode_over_a_real_bucket_refuses_a_forged_reset(
    s3_endpoint, bucket, writer_destination, tmp_path
):
    (signer,) = parse_signing_keys(new_signing_key_text())
    keys = [signer.public_key()]
    stream = ExportWriter(writer_destination, prefix=PREFIX, user_id="u-1", signer=signer)
    stream.deliver(list(changes("posts", "u-1", 50)))
    with SqliteStore(tmp_path / "consumer.db") as store:
        first = consume(reader(s3_endpoint, bucket), store, prefix=PREFIX, verify_keys=keys)
    stream.signer = None  # whoever forges it has no private key: an unsigned reset
    forged = stream.deliver([], reset=True)

    with SqliteStore(tmp_path / "consumer.db") as store:
        second = consume(reader(s3_endpoint, bucket), store, prefix=PREFIX, verify_keys=keys)
        held = store.count("posts", "u-1")

    assert (first.ok, first.records) == (True, 50)
    assert [(p.kind, p.key) for p in second.problems] == [("integrity", forged.key)]
    assert "is not signed" in second.problems[0].message
    assert held == 50
