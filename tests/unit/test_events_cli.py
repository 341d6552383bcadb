"""``portability events``: support sees what an app was told, on the embedded SQLite too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from portability.db.models import RunStatus
from portability.destinations.memory import MemoryDestination
from tests.fixtures.transfers import run_to_end
from tests.fixtures.workers import TEST_PSEUDONYM_KEY


def portability(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, as support runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    env.update(PORTABILITY_DATABASE_URL=database_url, PORTABILITY_PSEUDONYM_KEY=TEST_PSEUDONYM_KEY)
    return subprocess.run(
        [sys.executable, "-c", "from portability.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_events_list_and_show_give_the_payloads_an_app_was_sent(
    sqlite_url, sqlite_engine, make_transfer
):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=20, categories="posts")
    assert run_to_end(transfer, transfer.new_run()) == RunStatus.SUCCEEDED

    listed = portability(
        "events", "list", "--app", str(transfer.app_id), "--json", database_url=sqlite_url
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["type"] for r in rows) == [
        "authorization.created",
        "run.succeeded",
        "stream.replayed",
    ]
    succeeded = next(r for r in rows if r["type"] == "run.succeeded")
    shown = portability(
        "events", "show", succeeded["id"], "--app", str(transfer.app_id), database_url=sqlite_url
    )
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)["payload"]
    assert payload["data"]["user"] == transfer.pseudonym
    assert transfer.user_id not in shown.stdout


def test_events_show_of_another_apps_event_is_not_found(sqlite_url, sqlite_engine, make_transfer):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=5, categories="posts")
    listed = portability(
        "events", "list", "--app", str(transfer.app_id), "--json", database_url=sqlite_url
    )
    (created,) = json.loads(listed.stdout)

    shown = portability(
        "events", "show", created["id"], "--app", str(transfer.app_id + 1), database_url=sqlite_url
    )

    assert shown.returncode != 0
    assert "not found" in shown.stderr
