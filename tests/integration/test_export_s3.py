"""The export engine against S3 over HTTP: faults injected by a proxy in front of moto, a real
permanent error from SeaweedFS, and a part large enough to go up as a multipart upload."""

from __future__ import annotations

import pytest

from portability.db.models import RunStatus
from portability.destinations.s3 import S3Destination
from tests.fixtures.s3 import create_bucket
from tests.fixtures.transfers import assert_exactly_once, manifests, run_to_end

pytestmark = pytest.mark.services


@pytest.mark.parametrize("mode", ["503", "slowdown", "reset", "lost"])
def test_a_flaky_endpoint_makes_the_run_retry_and_then_succeed(
    pg_engine, make_transfer, flaky_s3, mode
):
    bucket = create_bucket(flaky_s3.endpoint)
    destination = S3Destination(flaky_s3.endpoint.config(bucket, max_attempts=2))
    transfer = make_transfer(pg_engine, destination, records=120, categories="posts")
    flaky_s3.fail_next(5, mode)  # more than one request's retries: the run itself must retry
    run_id = transfer.new_run()

    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED
    assert flaky_s3.faults_served == [mode] * 5
    assert transfer.run(run_id).attempts >= 2
    assert_exactly_once(transfer, ["posts"])


def test_a_missing_bucket_fails_the_run_at_once_saying_what_to_fix(
    pg_engine, make_transfer, s3_endpoint
):
    destination = S3Destination(s3_endpoint.config("no-such-bucket-anywhere"))
    transfer = make_transfer(pg_engine, destination, records=50, categories="posts")
    run_id = transfer.new_run()

    assert run_to_end(transfer, run_id) == RunStatus.FAILED
    run = transfer.run(run_id)
    assert (run.attempts, run.failure_reason) == (1, "destination_permanent")
    assert "no-such-bucket-anywhere" in run.last_error


def test_a_part_above_the_multipart_threshold_is_uploaded_in_chunks_and_reads_back_whole(
    pg_engine, make_transfer, s3_endpoint, test_settings
):
    bucket = create_bucket(s3_endpoint)
    destination = S3Destination(s3_endpoint.config(bucket))  # 5 MiB chunks
    settings = test_settings.model_copy(update={"export_part_max_records": 1_000_000})
    transfer = make_transfer(
        pg_engine,
        destination,
        records=90_000,
        categories="activity",
        settings=settings,
        compression="none",
    )
    run_id = transfer.new_run()

    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED
    (manifest,) = manifests(destination, transfer.stream("activity"))
    (part,) = manifest.parts
    assert part.bytes > 2 * 5 * 1024 * 1024, "the part must span several multipart chunks"
    head = s3_endpoint.client.head_object(Bucket=bucket, Key=part.key)
    assert head["ETag"].strip('"').endswith(f"-{-(-part.bytes // (5 * 1024 * 1024))}")
    assert_exactly_once(transfer, ["activity"])
