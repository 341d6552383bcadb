"""`portability consume`: options, output, exit codes -- against an in-memory bucket."""

from __future__ import annotations

import gzip
import json

import pytest

from portability.cli import consume as consume_cli
from portability.cli._errors import EXIT_FAILED, EXIT_USAGE
from portability.consumer import SqliteStore, snapshot_name
from portability.destinations.memory import MemoryDestination
from tests.fixtures.consumer import PREFIX
from tests.fixtures.exports import ExportWriter, changes


@pytest.fixture
def bucket(monkeypatch) -> MemoryDestination:
    destination = MemoryDestination()
    opened: list[dict] = []

    def open_bucket(name, **kwargs):
        opened.append({"bucket": name, **kwargs})
        return destination

    monkeypatch.setattr(consume_cli, "open_bucket", open_bucket)
    destination.opened = opened  # type: ignore[attr-defined]
    return destination


@pytest.fixture
def consume(cli):
    def run(*args, env=None):
        base = ["consume", "--bucket", "b", "--prefix", PREFIX]
        env = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", **(env or {})}
        return cli(*base, *args, env=env)

    return run


def test_consume_applies_and_prints_one_json_report(consume, bucket, tmp_path):
    ExportWriter(bucket, prefix=PREFIX).deliver(list(changes("posts", "u1", 25)))

    result = consume("--store", str(tmp_path / "c.db"), "--json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["ok"], report["manifests_applied"], report["records"]) == (True, 1, 25)
    assert result.stderr == ""  # --json is quiet
    with SqliteStore(tmp_path / "c.db") as store:
        assert store.count("posts", "u1") == 25


def test_credentials_come_from_the_environment(consume, bucket, tmp_path):
    result = consume(
        "--store",
        str(tmp_path / "c.db"),
        "--endpoint-url",
        "http://127.0.0.1:9000",
        "--addressing-style",
        "virtual",
    )

    assert result.exit_code == 0, result.stderr
    assert bucket.opened == [
        {
            "bucket": "b",
            "access_key_id": "AKID",
            "secret_access_key": "SECRET",
            "endpoint_url": "http://127.0.0.1:9000",
            "region": "us-east-1",
            "addressing_style": "virtual",
        }
    ]


def test_progress_and_ignored_objects_are_shown_to_a_human(consume, bucket, tmp_path):
    ExportWriter(bucket, prefix=PREFIX, records_per_part=10).deliver(
        list(changes("posts", "u1", 25))
    )
    bucket.put_object(f"{PREFIX}/u1/posts/g1/parts/leftover.jsonl.gz", b"x")

    result = consume("--store", str(tmp_path / "c.db"))

    assert result.exit_code == 0, result.stderr
    assert "applied u1/posts/g1 #1: part 3/3, 25/25 records" in result.stderr
    assert "applied 1 manifest(s), 25 records" in result.stdout
    assert "ignored 1 object(s) that no manifest lists" in result.stdout


def test_a_gap_exits_with_the_integrity_code_after_the_report(consume, bucket, tmp_path):
    stream = ExportWriter(bucket, prefix=PREFIX)
    stream.deliver(list(changes("posts", "u1", 5)), write_manifest=False)
    stream.deliver(list(changes("posts", "u1", 5, start=5)))

    result = consume("--store", str(tmp_path / "c.db"), "--json")

    assert result.exit_code == EXIT_FAILED
    assert "stream(s) stopped" in result.stderr
    report = json.loads(result.stdout)
    assert [p["kind"] for p in report["problems"]] == ["gap"]


def test_jsonl_format_needs_an_output_folder(consume, bucket, tmp_path):
    result = consume("--store", str(tmp_path / "c.db"), "--format", "jsonl")

    assert result.exit_code == EXIT_USAGE
    assert "--out" in result.stderr


def test_jsonl_format_writes_snapshots_under_out(consume, bucket, tmp_path):
    ExportWriter(bucket, prefix=PREFIX, category="activity").deliver(
        list(changes("activity", "u1", 9))
    )

    result = consume(
        "--store",
        str(tmp_path / "c.db"),
        "--format",
        "jsonl",
        "--out",
        str(tmp_path / "o"),
    )

    assert result.exit_code == 0, result.stderr
    lines = (tmp_path / "o" / "activity" / snapshot_name("u1")).read_text().splitlines()
    assert len(lines) == 9


def test_limits_on_the_command_line_reach_the_consumer(consume, bucket, tmp_path):
    line = b'{"id":"a","op":"upsert","changed_at":"t","data":{"pad":"' + b"x" * (2 << 20) + b'"}}'
    hostile = ExportWriter(bucket, prefix=PREFIX).deliver_raw(gzip.compress(line + b"\n"))

    accepted = consume("--store", str(tmp_path / "a.db"), "--json")
    refused = consume("--store", str(tmp_path / "r.db"), "--json", "--max-line-mib", "1")

    assert accepted.exit_code == 0, accepted.stderr
    assert refused.exit_code == EXIT_FAILED
    problems = json.loads(refused.stdout)["problems"]
    assert [p["key"] for p in problems] == [hostile.manifest.parts[0].key]
    assert "longer than 1048576 bytes" in problems[0]["message"]
