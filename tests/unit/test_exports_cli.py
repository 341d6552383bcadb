"""``portability exports``: support lists, shows, requests and cancels users' exports through
the real entry point, with the groups' exit codes, and every change is audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from portability.db.audit_log import AuditEntry


@pytest.fixture
def env(exports):
    return {
        "PORTABILITY_DATABASE_URL": exports.settings.resolved_database_url,
        "PORTABILITY_ACTOR": "support-sam",
        "PORTABILITY_USER_EXPORT_BUCKET": exports.bucket,
    }


def test_list_shows_a_users_exports_as_a_table_and_as_json(cli, exports, env):
    ready = exports.request(categories=["posts"])
    exports.run(ready)

    table = cli("exports", "list", "--user", exports.user_id, env=env)
    assert table.exit_code == 0, table.stderr
    assert "ready" in table.stdout and "posts" in table.stdout
    rows = json.loads(cli("exports", "list", "--user", exports.user_id, "--json", env=env).stdout)
    assert [(r["id"], r["status"], r["categories"]) for r in rows] == [(ready, "ready", ["posts"])]
    assert rows[0]["size_bytes"] > 0


def test_show_gives_the_volumes_keys_and_checksums(cli, exports, env):
    export_id = exports.request()
    exports.run(export_id)
    shown = json.loads(cli("exports", "show", str(export_id), "--json", env=env).stdout)
    row = exports.row(export_id)
    assert (shown["object_keys"], shown["sha256s"]) == (row.object_keys, row.sha256s)


def test_show_of_an_unknown_export_exits_3(cli, exports, env):
    result = cli("exports", "show", "999", env=env)
    assert (result.exit_code, result.error_lines[0]) == (3, "error: export 999 not found")


def test_support_requests_an_export_on_a_users_behalf_and_it_is_audited(cli, exports, env):
    result = cli(
        "exports",
        "request",
        "--user",
        exports.user_id,
        "--categories",
        "posts,profile",
        "--json",
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    made = json.loads(result.stdout)
    assert (made["requested_by"], made["categories"]) == ("support", ["profile", "posts"])
    with exports.runtime.sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.command == "exports request")
        ).one()
    assert (entry.actor, entry.object_id) == ("support-sam", str(made["id"]))


def test_cancel_stops_a_queued_export_and_is_audited(cli, exports, env):
    export_id = exports.request()
    result = cli("exports", "cancel", str(export_id), env=env)
    assert (result.exit_code, result.stdout.strip()) == (0, f"export {export_id} cancelled")
    assert exports.row(export_id).status == "cancelled"
    with exports.runtime.sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.command == "exports cancel")
        ).one()
    assert (entry.before["status"], entry.after["status"]) == ("queued", "cancelled")


def test_cancelling_an_export_that_ended_fails_with_the_reason(cli, exports, env):
    export_id = exports.request()
    exports.run(export_id)
    result = cli("exports", "cancel", str(export_id), env=env)
    assert result.exit_code == 1
    assert "only a queued or running export can be cancelled" in result.error_lines[0]


def test_help_shows_an_example(cli):
    result = cli("exports", "list", "--help")
    assert result.exit_code == 0 and "Example: portability exports list" in result.stdout
