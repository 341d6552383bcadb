"""`--watch` and faults: polling picks up new manifests; a transient fault costs one poll."""

from __future__ import annotations

import threading

import pytest

from portability.consumer import Consumer, SqliteStore
from portability.errors import DestinationTransientError
from tests.fixtures.consumer import PREFIX
from tests.fixtures.exports import ExportWriter, changes


def test_watch_applies_manifests_as_they_arrive(bucket, tmp_path):
    stream = ExportWriter(bucket, prefix=PREFIX)
    stream.deliver(list(changes("posts", "u1", 5)))
    stop = threading.Event()
    reports = []

    def on_report(report):
        reports.append(report)
        if len(reports) == 1:
            stream.deliver(list(changes("posts", "u1", 3, start=5)))  # arrives between polls
        else:
            stop.set()

    with SqliteStore(tmp_path / "c.db") as store:
        Consumer(bucket, store, prefix=PREFIX).watch(0.01, stop=stop, on_report=on_report)
        assert store.count("posts", "u1") == 8

    assert [[a.sequence for a in r.applied] for r in reports] == [[1], [2]]


def test_watch_survives_a_transient_bucket_fault(bucket, tmp_path):
    ExportWriter(bucket, prefix=PREFIX).deliver(list(changes("posts", "u1", 5)))
    bucket.fail_next(1, "transient", on=("list",))
    stop = threading.Event()
    faults, reports = [], []

    def on_report(report):
        reports.append(report)
        stop.set()

    with SqliteStore(tmp_path / "c.db") as store:
        Consumer(bucket, store, prefix=PREFIX).watch(
            0.01, stop=stop, on_report=on_report, on_transient=faults.append
        )

    assert len(faults) == 1
    assert [r.records for r in reports] == [5]


def test_a_transient_fault_inside_a_manifest_rolls_it_back(bucket, tmp_path):
    delivered = ExportWriter(bucket, prefix=PREFIX, records_per_part=10).deliver(
        list(changes("posts", "u1", 30))
    )
    bucket.fail_next(1, "transient", on=("get",), key_contains="part-00003")

    with SqliteStore(tmp_path / "c.db") as store:
        with pytest.raises(DestinationTransientError):
            Consumer(bucket, store, prefix=PREFIX).run_once()
        assert store.count("posts", "u1") == 0
        report = Consumer(bucket, store, prefix=PREFIX).run_once()

    assert [a.manifest_key for a in report.applied] == [delivered.key]
