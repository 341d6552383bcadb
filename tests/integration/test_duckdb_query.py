"""The README's DuckDB queries read a real export without our code and count what they should.

The queries are taken verbatim from the documentation (the ```sql block after each
``<!-- duckdb:NAME -->`` marker), with the placeholder bucket replaced. The export lives in a
real S3 server (SeaweedFS); the ``s3://`` form needs DuckDB's ``httpfs`` extension, which
DuckDB downloads on first use -- here it comes from the ``duckdb-ext-httpfs`` wheel, so the test
runs offline. The local form is checked on a copy of the user's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pytest

from portability.destinations.s3 import S3Destination
from tests.fixtures.exports import ExportWriter, changes
from tests.fixtures.s3 import create_bucket

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
USER = "u-1001"
PREFIX = "exports"
#: 100 new posts, then 40 changes over ids 0..39 of which 10 are tombstones.
DELIVERED_CHANGES = 140
CURRENT_POSTS = 90
LEFTOVER_CHANGES = 5


def documented_query(name: str) -> str:
    """The SQL block after ``<!-- duckdb:name -->`` in the README."""
    marker = f"<!-- duckdb:{name} -->"
    for path in (ROOT / "README.md",):
        text = path.read_text() if path.exists() else ""
        if marker in text:
            match = re.search(re.escape(marker) + r"\s*```sql\n(.*?)```", text, re.S)
            assert match, f"{path}: no ```sql block after {marker}"
            return match.group(1)
    raise AssertionError(f"no {marker} in README.md")


@pytest.fixture
def export(s3_endpoint):
    """One user's posts in two manifests, a leftover part, and another user beside them."""
    bucket = create_bucket(s3_endpoint)
    destination = S3Destination(s3_endpoint.config(bucket))
    posts = ExportWriter(destination, prefix=PREFIX, user_id=USER, grant_id=3, records_per_part=30)
    posts.deliver(list(changes("posts", USER, 100)))
    posts.deliver(list(changes("posts", USER, 40, start=100, distinct=50, delete_every=4)))
    posts.deliver(list(changes("posts", USER, LEFTOVER_CHANGES, start=500)), write_manifest=False)
    other = ExportWriter(destination, prefix=PREFIX, user_id="u-2002", grant_id=4)
    other.deliver(list(changes("posts", "u-2002", 17)))
    return bucket


def run(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])


def test_the_local_queries_count_one_users_changes_after_copying_the_folder(
    s3_endpoint, export, tmp_path, monkeypatch
):
    client = s3_endpoint.client
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=export, Prefix=f"{PREFIX}/{USER}/"
    )
    for page in pages:
        for item in page.get("Contents", []):
            target = tmp_path / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(export, item["Key"], str(target))
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect()

    assert run(con, documented_query("local-count")) == DELIVERED_CHANGES + LEFTOVER_CHANGES
    assert run(con, documented_query("local-manifested")) == CURRENT_POSTS


def _packaged_extensions() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("duckdb_ext")
    assert spec is not None and spec.submodule_search_locations, "duckdb-ext-httpfs is missing"
    return Path(next(iter(spec.submodule_search_locations))) / "extensions"


def test_the_s3_queries_count_one_users_changes_straight_from_the_bucket(s3_endpoint, export):
    con = duckdb.connect()
    # The duckdb-ext-httpfs wheel (a development dependency) ships the extension in DuckDB's
    # own folder layout, so no download is needed; a developer's DuckDB fetches it on first use.
    con.execute("SET extension_directory = ?", [str(_packaged_extensions())])
    con.execute("LOAD httpfs")
    endpoint = urlsplit(s3_endpoint.endpoint_url)
    con.execute(
        "CREATE SECRET bucket (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
        "URL_STYLE 'path', USE_SSL false)",
        [
            s3_endpoint.access_key_id,
            s3_endpoint.secret_access_key,
            s3_endpoint.region,
            endpoint.netloc,
        ],
    )

    count = documented_query("s3-count").replace("s3://my-bucket/", f"s3://{export}/")
    manifested = documented_query("s3-manifested").replace("s3://my-bucket/", f"s3://{export}/")

    assert run(con, count) == DELIVERED_CHANGES + LEFTOVER_CHANGES
    assert run(con, manifested) == CURRENT_POSTS
