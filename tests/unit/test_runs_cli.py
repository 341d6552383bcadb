"""``portability runs``: support lists, explains, retries and cancels runs, through the real
entry point, on an embedded SQLite database."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from portability.cli._errors import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK
from portability.crypto import CredentialBox
from portability.db.models import Run, RunStatus
from portability.devtools.sample import register_sample_transfer
from portability.errors import FailureReason
from portability.registry import add_user, revoke_grant
from portability.runs import create_run
from tests.fixtures.cli import CLOSED_BROKER


def test_show_explains_a_denied_destination_in_plain_words(cli, support):
    run_id = support.finished_run()

    result = cli("runs", "show", run_id, env=support.env)

    assert result.exit_code == EXIT_OK, result.stderr
    assert "the destination denied access: the developer must fix the bucket policy" in (
        result.stdout
    )
    assert "access denied to bucket dev-bucket" in result.stdout
    assert "s3://dev-bucket" in result.stdout and "secret" not in result.stdout


def test_list_filters_by_status_newest_first_as_json(cli, support):
    failed = [support.finished_run(), support.finished_run()]
    support.finished_run(RunStatus.CANCELLED, error="by hand")

    result = cli("runs", "list", "--status", "failed", "--since", "1h", "--json", env=support.env)

    assert result.exit_code == EXIT_OK, result.stderr
    assert [(r["id"], r["status"]) for r in json.loads(result.stdout)] == [
        (failed[1], "failed"),
        (failed[0], "failed"),
    ]


def test_retry_queues_a_linked_run_and_audits_who_did_it(cli, support):
    run_id = support.finished_run()

    result = cli("runs", "retry", run_id, "--no-enqueue", "--json", env=support.env)
    audit = cli("audit", "list", "--object", f"run:{run_id}", "--json", env=support.env)

    assert result.exit_code == EXIT_OK, result.stderr
    [row] = json.loads(result.stdout)
    assert (row["run"], row["result"]) == (run_id, "queued")
    [entry] = json.loads(audit.stdout)
    assert (entry["actor"], entry["command"], entry["after"]["retried_as"]) == (
        "alice",
        "runs retry",
        row["retry"],
    )
    assert entry["before"]["status"] == "failed" and entry["after"]["retried_as"] == row["retry"]


def test_retry_of_a_succeeded_run_says_there_is_nothing_to_retry(cli, support):
    run_id = support.finished_run(RunStatus.SUCCEEDED, error=None)

    result = cli("runs", "retry", run_id, env=support.env)

    assert result.exit_code == EXIT_FAILED
    assert result.error_lines == [f"error: run {run_id} succeeded: there is nothing to retry"]


def test_retry_of_a_run_whose_grant_was_revoked_is_refused_with_the_reason(cli, support):
    run_id = support.finished_run()
    with support.sessions().begin() as session:
        revoke_grant(session, support.authorization_id, reason="user left")

    result = cli("runs", "retry", run_id, env=support.env)

    assert result.exit_code == EXIT_FAILED
    assert "cannot be retried" in result.stderr and "revoked" in result.stderr
    assert support.runs() == 1


def test_retry_with_the_broker_down_leaves_one_queued_run_for_the_reconciler(cli, support):
    run_id = support.finished_run()
    env = {**support.env, "PORTABILITY_BROKER_URL": CLOSED_BROKER}

    first = cli("runs", "retry", run_id, env=env)
    second = cli("runs", "retry", run_id, env=env)

    assert first.exit_code == EXIT_FAILED
    assert "are queued but could not be sent" in first.stderr
    assert "reconciler" in first.stderr and "Traceback" not in first.stderr
    assert second.exit_code == EXIT_FAILED
    assert "already retried as run" in second.stderr
    with support.sessions()() as session:
        retries = session.scalars(select(Run).where(Run.rerun_of == run_id)).all()
    assert [r.status for r in retries] == ["queued"]


def test_bulk_retry_dry_run_lists_what_it_would_do_and_changes_nothing(cli, support):
    retryable = support.finished_run()
    with support.sessions().begin() as session:
        add_user(session, user_id="u2", country="DE")
        other = register_sample_transfer(
            session,
            CredentialBox(Fernet.generate_key()),
            user_id="u2",
            categories="posts",
            eligible_countries={"DE"},
            bucket="other-bucket",
            access_key_id="k",
            secret_access_key="s",
        )
    refused = support.finished_run(transfer=(other.authorization_id, other.destination_id))
    with support.sessions().begin() as session:
        revoke_grant(session, other.authorization_id, reason="user left")
    before = support.runs()

    result = cli(
        "runs", "retry", "--failed", "--since", "1h", "--dry-run", "--json", env=support.env
    )

    assert result.exit_code == EXIT_OK, result.stderr
    rows = {r["run"]: r["action"] for r in json.loads(result.stdout)}
    assert rows[retryable] == "retry"
    assert rows[refused].startswith("refused:") and "revoked" in rows[refused]
    assert support.runs() == before


def test_bulk_retry_retries_every_failed_run_not_yet_retried(cli, support):
    failed = {support.finished_run(), support.finished_run()}

    result = cli("runs", "retry", "--failed", "--no-enqueue", "--json", env=support.env)
    again = cli("runs", "retry", "--failed", "--no-enqueue", "--json", env=support.env)

    assert result.exit_code == EXIT_OK, result.stderr
    assert {r["run"] for r in json.loads(result.stdout)} == failed
    assert json.loads(again.stdout) == []


def test_cancel_stops_a_queued_run_and_a_second_cancel_is_refused(cli, support):
    with support.sessions().begin() as session:
        run_id = create_run(
            session,
            app_id=None,
            authorization_id=support.authorization_id,
            destination_id=support.destination_id,
            categories="posts",
        ).id

    first = cli("runs", "cancel", run_id, "--reason", "developer asked", env=support.env)
    second = cli("runs", "cancel", run_id, env=support.env)

    assert first.exit_code == EXIT_OK, first.stderr
    assert second.exit_code == EXIT_FAILED
    assert "only queued or running runs can be cancelled" in second.stderr


@pytest.mark.parametrize(
    ("status", "code"), [(RunStatus.SUCCEEDED, EXIT_OK), (RunStatus.FAILED, EXIT_FAILED)]
)
def test_wait_exits_with_the_outcome_of_the_run(cli, support, status, code):
    run_id = support.finished_run(status, error=None if status is RunStatus.SUCCEEDED else "x")

    result = cli("runs", "wait", run_id, "--timeout", "5", env=support.env)

    assert result.exit_code == code, result.stderr
    assert f"run {run_id} {status.value}" in result.stdout


def test_a_run_that_does_not_exist_is_not_found(cli, support):
    result = cli("runs", "show", 999, env=support.env)

    assert (result.exit_code, result.error_lines) == (EXIT_NOT_FOUND, ["error: run 999 not found"])


def test_dry_run_of_named_runs_says_which_would_be_refused_and_why(cli, support):
    failed = support.finished_run()
    succeeded = support.finished_run(RunStatus.SUCCEEDED, error=None)

    result = cli("runs", "retry", failed, succeeded, 999, "--dry-run", "--json", env=support.env)

    assert result.exit_code == EXIT_OK, result.stderr
    assert json.loads(result.stdout) == [
        {"run": failed, "action": "retry"},
        {
            "run": succeeded,
            "action": f"refused: run {succeeded} succeeded: there is nothing to retry",
        },
        {"run": 999, "action": "refused: run 999 not found"},
    ]
    assert support.runs() == 2


def test_show_lists_every_attempt_with_its_time_outcome_and_error(cli, support):
    """A transient failure, a worker that died mid-attempt, then a permanent failure."""
    from datetime import timedelta

    from portability.db.base import utcnow
    from portability.runs import claim_run, finish_run, release_for_retry

    sessions = support.sessions()
    with sessions.begin() as session:
        run_id = create_run(
            session,
            app_id=None,
            authorization_id=support.authorization_id,
            destination_id=support.destination_id,
            categories="posts",
        ).id
    with sessions.begin() as session:
        claim_run(session, run_id, lease_seconds=30)
        release_for_retry(
            session,
            run_id,
            error="the destination is unavailable (503)",
            reason=FailureReason.DESTINATION_TRANSIENT,
            delay_seconds=0,
        )
    with sessions.begin() as session:
        claim_run(session, run_id, lease_seconds=30)  # this worker dies: its lease lapses
    with sessions.begin() as session:
        assert claim_run(session, run_id, lease_seconds=30, now=utcnow() + timedelta(minutes=5))
        finish_run(
            session,
            run_id,
            RunStatus.FAILED,
            error="access denied to bucket dev-bucket",
            reason=FailureReason.DESTINATION_PERMANENT,
            detail="AccessDenied: s3:PutObject",
        )

    shown = cli("runs", "show", run_id, "--json", env=support.env)
    table = cli("runs", "show", run_id, env=support.env)

    assert shown.exit_code == EXIT_OK, shown.stderr
    history = json.loads(shown.stdout)["attempt_history"]
    assert [(a["number"], a["outcome"], a["error"]) for a in history] == [
        (1, "queued", "the destination is unavailable (503)"),
        (
            2,
            "lapsed",
            "ended without a record: the worker died, was killed or lost its lease, "
            "and the run was taken over",
        ),
        (3, "failed", "access denied to bucket dev-bucket"),
    ]
    assert history[2]["detail"] == "AccessDenied: s3:PutObject"
    assert all(a["started_at"] and a["worker"] for a in history)
    assert "attempt_history:" in table.stdout and "lapsed" in table.stdout
