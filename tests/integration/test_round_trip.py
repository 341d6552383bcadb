"""The whole product, end to end on real services: the platform's data, exported by a real
Celery worker to a real S3 server, changed, exported again, and rebuilt by the reference
consumer from the bucket alone -- equal to the platform's current state, record by record."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import text

from portability.categories import Category
from portability.consumer import SqliteStore, consume, open_bucket
from portability.db.engine import make_engine
from portability.destinations.s3 import S3Destination
from portability.manifest import manifest_key
from portability.platform.mutate import mutate
from portability.settings import Settings
from portability.signing import load_signers
from tests.fixtures.transfers import delivered_lines, expected_state, manifests
from tests.fixtures.workers import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
CATEGORIES = [c.value for c in Category]


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _run_through_worker(env, transfer, engine) -> int:
    from workers.app import EXPORT_TASK, create_app

    run_id = transfer.new_run()
    settings = Settings(
        data_dir=Path(env["PORTABILITY_DATA_DIR"]), broker_url=env["PORTABILITY_BROKER_URL"]
    )
    create_app(settings).send_task(EXPORT_TASK, args=[run_id])

    def status() -> str:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text("SELECT status FROM runs WHERE id = :i"), {"i": run_id}
                ).scalar_one()
            )

    wait_until(
        lambda: status() in {"succeeded", "failed", "cancelled"}, timeout=120, what=f"run {run_id}"
    )
    assert status() == "succeeded"
    return run_id


def test_a_consumer_rebuilds_the_users_data_from_the_bucket_alone(
    pg_url, worker_env, start_worker, make_transfer, s3_endpoint, make_bucket, tmp_path
):
    settings = Settings(
        encryption_key=worker_env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=worker_env["PORTABILITY_PSEUDONYM_KEY"],
        manifest_signing_keys=worker_env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
        data_dir=tmp_path / "d",
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )
    bucket = make_bucket(s3_endpoint)
    config = s3_endpoint.config(bucket)
    engine = make_engine(pg_url)
    transfer = make_transfer(
        engine,
        S3Destination(config),
        records=2_000,
        settings=settings,
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )
    start_worker()
    _run_through_worker(worker_env, transfer, engine)
    mutate(engine, user_id=transfer.user_id, updates=40, deletes=12, seed=21)
    _run_through_worker(worker_env, transfer, engine)

    developer_bucket = open_bucket(
        bucket,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
        endpoint_url=s3_endpoint.endpoint_url,
        region=s3_endpoint.region,
    )
    # Verify mode: every manifest the engine wrote carries a signature by the published key.
    published = [signer.public_key() for signer in load_signers(settings)]
    with SqliteStore(str(tmp_path / "consumer.db")) as store:
        first = consume(developer_bucket, store, prefix=transfer.prefix, verify_keys=published)
        local = {
            c: {rid: data for rid, _at, data in store.records(c, transfer.pseudonym)}
            for c in CATEGORIES
        }
        again = consume(developer_bucket, store, prefix=transfer.prefix)
        local_again = {
            c: {rid: data for rid, _at, data in store.records(c, transfer.pseudonym)}
            for c in CATEGORIES
        }

    # The platform's current state as the app sees it: user ids replaced by its pseudonyms.
    platform = {c: expected_state(transfer, c) for c in CATEGORIES}
    assert first.ok and first.problems == []
    assert {c: len(v) for c, v in local.items()} == {c: len(v) for c, v in platform.items()}
    assert local == platform
    assert (again.records, local_again) == (0, local)
    engine.dispose()


def test_every_record_and_manifest_of_a_real_export_validates_against_the_published_schemas(
    pg_engine, make_transfer, s3_endpoint, make_bucket
):
    from portability.export import execute_run

    bucket = make_bucket(s3_endpoint)
    destination = S3Destination(s3_endpoint.config(bucket))
    transfer = make_transfer(pg_engine, destination, records=800)
    assert execute_run(transfer.runtime, transfer.new_run()).status == "succeeded"
    mutate(pg_engine, user_id=transfer.user_id, updates=20, deletes=8, seed=5)
    assert execute_run(transfer.runtime, transfer.new_run()).status == "succeeded"

    manifest_schema = _validator("manifest")
    for category in CATEGORIES:
        stream = transfer.stream(category)
        for manifest in manifests(destination, stream):
            stored = destination.get_object(manifest_key(stream, manifest.sequence))
            assert list(manifest_schema.iter_errors(orjson.loads(stored))) == []
        record_schema = _validator(category)
        lines = delivered_lines(destination, stream)
        assert lines, category
        problems = [
            (line[:80], error.message)
            for line in lines
            for error in record_schema.iter_errors(orjson.loads(line))
        ]
        assert problems == [], f"{category}: records that break docs/schemas/{category}.schema.json"
