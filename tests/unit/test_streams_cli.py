"""``portability streams``: support lists a grant's streams and asks for a full replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import text

from portability.db.models import RunStatus
from portability.destinations.memory import MemoryDestination
from tests.fixtures.transfers import assert_consumer_exact, run_to_end


def portability(*args: str, database_url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The installed entry point, as support runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    env["PORTABILITY_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-c", "from portability.cli import main; main()", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_streams_list_shows_each_stream_of_a_grant(sqlite_url, sqlite_engine, make_transfer):
    transfer = make_transfer(
        sqlite_engine, MemoryDestination(), records=40, categories="posts,profile"
    )
    run_to_end(transfer, transfer.new_run())

    done = portability(
        "streams",
        "list",
        "--grant",
        str(transfer.authorization_id),
        "--json",
        database_url=sqlite_url,
    )

    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert sorted((r["category"], r["sequence"], r["replay_pending"]) for r in rows) == [
        ("posts", 1, None),
        ("profile", 1, None),
    ]


def test_streams_replay_makes_the_next_delivery_a_full_replay(
    sqlite_url, sqlite_engine, make_transfer
):
    transfer = make_transfer(
        sqlite_engine, MemoryDestination(), records=40, categories="posts,profile"
    )
    run_to_end(transfer, transfer.new_run())

    done = portability(
        "streams",
        "replay",
        "--grant",
        str(transfer.authorization_id),
        "--category",
        "posts",
        "--yes",
        database_url=sqlite_url,
    )
    run_id = transfer.new_run()

    assert done.returncode == 0, done.stderr
    assert "1 stream(s) marked" in done.stdout
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED
    with sqlite_engine.connect() as conn:
        reasons = dict(
            conn.execute(
                text("SELECT category, replay_reason FROM run_categories WHERE run_id = :r"),
                {"r": run_id},
            ).all()
        )
    assert reasons["posts"] == "requested"
    assert_consumer_exact(transfer, ["posts", "profile"])


def test_streams_replay_asks_before_it_acts(sqlite_url, sqlite_engine, make_transfer):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=20, categories="posts")
    run_to_end(transfer, transfer.new_run())

    done = portability(
        "streams",
        "replay",
        "--grant",
        str(transfer.authorization_id),
        database_url=sqlite_url,
        stdin="n\n",
    )

    assert done.returncode != 0
    with sqlite_engine.connect() as conn:
        pending = conn.execute(text("SELECT count(*) FROM streams WHERE replay_reason IS NOT NULL"))
        assert pending.scalar_one() == 0


def test_streams_show_gives_the_changes_not_yet_delivered_and_the_latest_deliveries(
    sqlite_url, sqlite_engine, make_transfer
):
    from portability.platform.mutate import mutate

    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=40, categories="posts")
    first, second = transfer.new_run(), None
    assert run_to_end(transfer, first) == "succeeded"
    mutate(
        sqlite_engine, user_id=transfer.user_id, updates=2, deletes=0, seed=1, categories=["posts"]
    )
    second = transfer.new_run()
    assert run_to_end(transfer, second) == "succeeded"
    mutate(
        sqlite_engine, user_id=transfer.user_id, updates=3, deletes=0, seed=2, categories=["posts"]
    )
    with sqlite_engine.connect() as conn:
        stream_id = conn.execute(text("SELECT id FROM streams")).scalar_one()

    shown = portability("streams", "show", str(stream_id), "--json", database_url=sqlite_url)
    table = portability("streams", "show", str(stream_id), database_url=sqlite_url)
    missing = portability("streams", "show", "999", database_url=sqlite_url)

    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert (view["category"], view["sequence"], view["unseen_changes"]) == ("posts", 2, 3)
    assert [(d["run"], d["replay"]) for d in view["deliveries"]] == [
        (second, None),
        (first, "first_delivery"),
    ]
    assert view["deliveries"][0]["records"] == 2
    assert view["deliveries"][0]["manifest_key"] == view["last_manifest_key"]
    assert table.returncode == 0 and f"stream {stream_id}" in table.stdout
    assert missing.returncode == 3 and "stream 999 not found" in missing.stderr
