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
