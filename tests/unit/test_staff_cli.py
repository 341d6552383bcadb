"""Staff commands beside ``runs``: schedules, grants, destinations and app review, through the
real entry point on SQLite; every change lands in the audit log."""

from __future__ import annotations

import json

from portability.cli._errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from portability.db.models import Authorization
from portability.registry import create_schedule
from portability.runs import create_run


def _schedule(support, cron: str | None = "@daily") -> int:
    with support.sessions().begin() as session:
        app_id = session.get(Authorization, support.authorization_id).app_id
        return create_schedule(
            session,
            app_id=app_id,
            authorization_id=support.authorization_id,
            destination_id=support.destination_id,
            categories="posts",
            cron=cron,
        ).id


def test_a_paused_schedule_shows_paused_and_resumes_once(cli, support):
    schedule_id = _schedule(support)

    paused = cli("schedules", "pause", schedule_id, env=support.env)
    shown = json.loads(cli("schedules", "show", schedule_id, "--json", env=support.env).stdout)
    again = cli("schedules", "pause", schedule_id, env=support.env)
    resumed = cli("schedules", "resume", schedule_id, env=support.env)

    assert (paused.exit_code, shown["state"], resumed.exit_code) == (EXIT_OK, "paused", EXIT_OK)
    assert again.exit_code == EXIT_FAILED and "already paused" in again.stderr
    audit = json.loads(
        cli(
            "audit", "list", "--object", f"schedule:{schedule_id}", "--json", env=support.env
        ).stdout
    )
    assert [(e["command"], e["after"]["is_paused"]) for e in audit] == [
        ("schedules resume", False),
        ("schedules pause", True),
    ]


def test_run_now_queues_one_run_and_refuses_a_second_while_it_is_in_progress(cli, support):
    schedule_id = _schedule(support)

    first = cli("schedules", "run-now", schedule_id, "--no-enqueue", env=support.env)
    second = cli("schedules", "run-now", schedule_id, "--no-enqueue", env=support.env)

    assert first.exit_code == EXIT_OK, first.stderr
    assert second.exit_code == EXIT_FAILED and "already has run" in second.stderr
    runs = json.loads(
        cli("runs", "list", "--schedule", schedule_id, "--json", env=support.env).stdout
    )
    assert [r["status"] for r in runs] == ["queued"]


def test_revoking_a_grant_disables_its_schedules_and_is_audited_with_the_reason(cli, support):
    schedule_id = _schedule(support)

    revoked = cli(
        "grants", "revoke", support.authorization_id, "--reason", "ticket 9", env=support.env
    )
    grant = json.loads(
        cli("grants", "show", support.authorization_id, "--json", env=support.env).stdout
    )
    schedule = json.loads(cli("schedules", "show", schedule_id, "--json", env=support.env).stdout)

    assert revoked.exit_code == EXIT_OK, revoked.stderr
    assert grant["state"].startswith("revoked at") and "ticket 9" in grant["state"]
    assert schedule["state"].startswith("disabled: authorization")
    [entry] = json.loads(cli("audit", "list", "--by", "alice", "--json", env=support.env).stdout)
    assert (entry["command"], entry["note"]) == ("grants revoke", "ticket 9")


def test_destinations_are_shown_without_their_keys(cli, support):
    result = cli("destinations", "show", support.destination_id, "--json", env=support.env)

    assert result.exit_code == EXIT_OK
    shown = json.loads(result.stdout)
    assert shown["bucket"] == "dev-bucket"
    assert not {"credentials_encrypted", "access_key_id", "secret_access_key"} & set(shown)


def test_a_review_decision_that_does_not_follow_the_status_is_refused(cli, support):
    with support.sessions()() as session:
        app_id = session.get(Authorization, support.authorization_id).app_id

    approve_again = cli("apps", "approve", app_id, env=support.env)
    reject_silently = cli("apps", "reject", app_id, env=support.env)

    assert approve_again.exit_code == EXIT_FAILED
    assert f"app {app_id} is approved: it cannot become approved" in approve_again.stderr
    assert reject_silently.exit_code == EXIT_USAGE and "--note is required" in (
        reject_silently.stderr
    )


def test_doctor_lists_runs_stuck_in_queued_with_what_to_do(cli, support):
    from datetime import timedelta

    from portability.db.base import utcnow

    with support.sessions().begin() as session:
        create_run(
            session,
            app_id=None,
            authorization_id=support.authorization_id,
            destination_id=support.destination_id,
            categories="posts",
            now=utcnow() - timedelta(hours=1),
        )

    result = cli("doctor", "--json", env=support.env)

    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.exit_code == EXIT_FAILED
    assert not checks["stuck runs"]["ok"]
    assert "1 run(s) queued" in checks["stuck runs"]["detail"]
    assert "start workers" in checks["stuck runs"]["detail"]


def _lagging_stream(sqlite_engine, make_transfer, *, days: int) -> int:
    """An ongoing, scheduled stream last current ``days`` ago; returns its grant."""
    from datetime import timedelta

    from sqlalchemy import text

    from portability.db.base import utcnow
    from portability.destinations.memory import MemoryDestination
    from tests.fixtures.transfers import run_to_end

    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=10, categories="posts")
    assert run_to_end(transfer, transfer.new_run()) == "succeeded"
    with transfer.runtime.sessions.begin() as session:
        create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts",
            cron="@daily",
            timezone="UTC",
        )
    then = utcnow() - timedelta(days=days)
    with sqlite_engine.begin() as conn:
        conn.execute(
            text("UPDATE streams SET last_delivered_at = :t, updated_at = :t"), {"t": then}
        )
        conn.execute(text("UPDATE runs SET started_at = :t"), {"t": then})
    return int(transfer.authorization_id)


def test_doctor_names_the_stream_left_behind_and_where_to_look(
    cli, sqlite_url, sqlite_engine, make_transfer, tmp_path
):
    grant = _lagging_stream(sqlite_engine, make_transfer, days=3)
    env = {"PORTABILITY_DATABASE_URL": sqlite_url, "PORTABILITY_DATA_DIR": str(tmp_path / "d")}

    behind = cli("doctor", "--json", "--max-lag", "2d", env=env)
    tolerated = cli("doctor", "--json", "--max-lag", "4d", env=env)

    checks = {c["name"]: c for c in json.loads(behind.stdout)}
    assert behind.exit_code == EXIT_FAILED
    assert not checks["feed lag"]["ok"]
    assert (
        f"the stream of grant {grant} (posts) was last current 72.0 h ago"
        in (checks["feed lag"]["detail"])
    )
    assert f"portability streams list --grant {grant}" in checks["feed lag"]["detail"]
    assert tolerated.exit_code == EXIT_OK, tolerated.stdout
    assert (
        "current 72.0 h ago"
        in {c["name"]: c for c in json.loads(tolerated.stdout)}["feed lag"]["detail"]
    )


def test_doctor_names_schedules_due_and_never_claimed(cli, support):
    from datetime import timedelta

    from sqlalchemy import update

    from portability.db.base import utcnow
    from portability.db.models import Schedule

    with support.sessions().begin() as session:
        create_schedule(
            session,
            app_id=session.get(Authorization, support.authorization_id).app_id,
            authorization_id=support.authorization_id,
            destination_id=support.destination_id,
            categories="posts",
            cron="@hourly",
            timezone="UTC",
        )
        session.execute(update(Schedule).values(next_run_at=utcnow() - timedelta(hours=2)))

    result = cli("doctor", "--json", env=support.env)

    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.exit_code == EXIT_FAILED
    assert "1 schedule(s) were due" in checks["feed lag"]["detail"]
    assert "portability scheduler run" in checks["feed lag"]["detail"]


def test_doctor_rejects_a_maximum_lag_that_is_not_a_duration(cli, support):
    result = cli("doctor", "--max-lag", "soon", env=support.env)

    assert result.exit_code == EXIT_USAGE
    assert "'soon' is not a duration" in result.stderr
