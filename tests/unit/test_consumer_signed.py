"""Verify mode: given public keys, the consumer applies only manifests signed by one of them."""

from __future__ import annotations

import json

import orjson
import pytest

from portability.cli import consume as consume_cli
from portability.cli._errors import EXIT_FAILED, EXIT_USAGE
from portability.consumer import SqliteStore, consume
from portability.signing import new_signing_key_text, parse_signing_keys
from tests.fixtures.consumer import PREFIX, STREAM, ids
from tests.fixtures.exports import changes

OLD, NEW = new_signing_key_text(), new_signing_key_text()


def signer(text: str):
    return parse_signing_keys(text)[0]


def verify_keys(*texts: str):
    return [s.public_key() for text in texts for s in parse_signing_keys(text)]


@pytest.fixture
def signed(new_stream):
    """u1's posts, every manifest signed with ``NEW``."""
    return new_stream(user_id="u1", category="posts", signer=signer(NEW))


def test_signed_manifests_are_applied_in_verify_mode(bucket, store, signed):
    signed.deliver(list(changes("posts", "u1", 30)))
    signed.deliver(list(changes("posts", "u1", 10, start=30)))

    report = consume(bucket, store, prefix=PREFIX, verify_keys=verify_keys(NEW))

    assert report.ok, report.problems
    assert (len(report.applied), report.records) == (2, 40)


def test_a_forged_reset_manifest_does_not_wipe_the_consumer(bucket, store, signed):
    signed.deliver(list(changes("posts", "u1", 30)))
    consume(bucket, store, prefix=PREFIX, verify_keys=verify_keys(NEW))
    # Someone with write access to the bucket writes manifest 2: "replay from zero, nothing".
    forged = signed.deliver([], reset=True)
    forged_body = orjson.loads(bucket.objects[forged.key])
    forged_body["signature"]["value"] = orjson.loads(bucket.objects[signed.delivered[0].key])[
        "signature"
    ]["value"]  # a real signature, of another manifest
    bucket.objects[forged.key] = orjson.dumps(forged_body)

    report = consume(bucket, store, prefix=PREFIX, verify_keys=verify_keys(NEW))

    assert [(p.kind, p.key) for p in report.problems] == [("integrity", forged.key)]
    assert "forged or altered" in report.problems[0].message
    assert len(ids(store)) == 30
    assert store.position(STREAM).sequence == 1


def test_an_unsigned_manifest_is_refused_in_verify_mode(bucket, store, stream):
    delivered = stream.deliver(list(changes("posts", "u1", 5)))

    report = consume(bucket, store, prefix=PREFIX, verify_keys=verify_keys(NEW))

    assert [(p.kind, p.key) for p in report.problems] == [("integrity", delivered.key)]
    assert "is not signed" in report.problems[0].message
    assert ids(store) == set()


def test_without_keys_unsigned_manifests_are_applied_as_before(bucket, store, stream):
    stream.deliver(list(changes("posts", "u1", 5)))

    report = consume(bucket, store, prefix=PREFIX)

    assert report.ok, report.problems
    assert len(ids(store)) == 5


def test_manifests_signed_before_and_after_a_rotation_verify_with_both_keys(
    bucket, store, new_stream
):
    before = new_stream(user_id="u1", category="posts", signer=signer(OLD))
    before.deliver(list(changes("posts", "u1", 10)))
    before.signer = signer(f"{NEW},{OLD}")  # rotated: the new key signs from now on
    before.deliver(list(changes("posts", "u1", 10, start=10)))

    report = consume(bucket, store, prefix=PREFIX, verify_keys=verify_keys(NEW, OLD))

    assert report.ok, report.problems
    assert report.records == 20


def test_once_the_old_key_is_dropped_its_manifests_are_refused(bucket, store, new_stream):
    old = new_stream(user_id="u1", category="posts", signer=signer(OLD))
    delivered = old.deliver(list(changes("posts", "u1", 10)))

    report = consume(bucket, store, prefix=PREFIX, verify_keys=verify_keys(NEW))

    assert [p.key for p in report.problems] == [delivered.key]
    assert "not among the verify keys" in report.problems[0].message


@pytest.fixture
def cli_bucket(monkeypatch, bucket):
    monkeypatch.setattr(consume_cli, "open_bucket", lambda name, **kwargs: bucket)
    return bucket


@pytest.fixture
def run(cli):
    """The real entry point, as a developer runs it."""

    def invoke(tmp_path, *args):
        store = str(tmp_path / "c.db")
        return cli(
            *["consume", "--bucket", "b", "--prefix", PREFIX, "--store", store, "--json", *args],
            env={"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET"},
        )

    return invoke


def test_the_cli_verifies_with_a_key_file_and_refuses_an_unsigned_manifest(
    run, cli_bucket, tmp_path, new_stream
):
    new_stream(user_id="u1", category="posts", signer=signer(NEW)).deliver(
        list(changes("posts", "u1", 5))
    )
    unsigned = new_stream(user_id="u2", category="posts").deliver(list(changes("posts", "u2", 5)))
    key_file = tmp_path / "manifest-keys.json"
    key_file.write_bytes(orjson.dumps([k.to_dict() for k in verify_keys(NEW)]))

    result = run(tmp_path, "--verify-key", str(key_file))

    assert result.exit_code == EXIT_FAILED
    report = json.loads(result.stdout)
    assert report["records"] == 5
    assert [(p["kind"], p["key"]) for p in report["problems"]] == [("integrity", unsigned.key)]
    with SqliteStore(tmp_path / "c.db") as store:
        assert (store.count("posts", "u1"), store.count("posts", "u2")) == (5, 0)


def test_the_cli_accepts_keys_as_text(run, cli_bucket, tmp_path, new_stream):
    new_stream(user_id="u1", category="posts", signer=signer(OLD)).deliver(
        list(changes("posts", "u1", 5))
    )
    public = verify_keys(OLD)[0].to_dict()

    result = run(tmp_path, "--verify-keys", f"{public['key_id']}:{public['public_key']}")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["records"] == 5


def test_the_cli_refuses_a_key_file_it_cannot_read(run, cli_bucket, tmp_path):
    result = run(tmp_path, "--verify-key", str(tmp_path / "missing.txt"))

    assert result.exit_code == EXIT_USAGE
    assert "--verify-key" in result.stderr
