"""``portability runs``: support staff list, show and re-run transfers from the command line."""

from __future__ import annotations

import json

import pytest
import typer
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from portability.cli import runs as runs_cli
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import RunStatus
from portability.devtools.sample import register_sample_transfer
from portability.errors import FailureReason
from portability.registry import add_user
from portability.runs import claim_run, create_run, finish_run


@pytest.fixture
def failed_run(sqlite_url, monkeypatch):
    monkeypatch.setenv("PORTABILITY_DATABASE_URL", sqlite_url)
    engine = make_engine(sqlite_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        add_user(session, user_id="u1", country="DE")
        sample = register_sample_transfer(
            session,
            CredentialBox(Fernet.generate_key()),
            user_id="u1",
            categories="posts",
            eligible_countries={"DE"},
            bucket="dev-bucket",
            access_key_id="k",
            secret_access_key="s",
        )
        run_id = create_run(
            session,
            authorization_id=sample.authorization_id,
            destination_id=sample.destination_id,
            categories="posts",
        ).id
    with sessions.begin() as session:
        claim_run(session, run_id, lease_seconds=30)
    with sessions.begin() as session:
        finish_run(
            session,
            run_id,
            RunStatus.FAILED,
            error="bucket 'dev-bucket' does not exist",
            reason=FailureReason.DESTINATION_PERMANENT,
            detail="HTTP 404 NoSuchBucket: The specified bucket does not exist",
        )
    yield run_id
    engine.dispose()


def invoke(*args: str):
    app = typer.Typer()
    runs_cli.register(app)
    return CliRunner().invoke(app, ["runs", *args])


def test_show_names_the_failure_and_its_reason(failed_run):
    result = invoke("show", str(failed_run))
    assert result.exit_code == 0, result.output
    assert "failed" in result.output
    assert "[destination_permanent] bucket 'dev-bucket' does not exist" in result.output


def test_show_gives_staff_the_raw_diagnostic_apart_from_the_developers_message(failed_run):
    text = invoke("show", str(failed_run))
    shown = json.loads(invoke("show", str(failed_run), "--json").output)

    assert "diagnostic : HTTP 404 NoSuchBucket: The specified bucket" in text.output
    assert (shown["last_error"], shown["error_detail"]) == (
        "bucket 'dev-bucket' does not exist",
        "HTTP 404 NoSuchBucket: The specified bucket does not exist",
    )


def test_list_filters_by_status_as_json(failed_run):
    result = invoke("list", "--status", "failed", "--json")
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["status"]) for r in json.loads(result.output)] == [(failed_run, "failed")]


def test_rerun_creates_a_queued_run_linked_to_the_failed_one(failed_run):
    result = invoke("rerun", str(failed_run), "--no-enqueue", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert (view["status"], view["rerun_of"], view["categories"]) == (
        "queued",
        failed_run,
        ["posts"],
    )


def test_rerun_of_a_run_that_did_not_fail_is_refused(failed_run):
    first = json.loads(invoke("rerun", str(failed_run), "--no-enqueue", "--json").output)
    result = invoke("rerun", str(first["id"]), "--no-enqueue")
    assert result.exit_code != 0
    assert "only failed or cancelled runs re-run" in str(result.exception)
