"""The CLI's foundation, through its real entry point: exit codes, one-line usage errors,
environment errors that name their fix, values refused before the database sees them."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from portability.cli._errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
)
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.devtools.sample import register_sample_transfer
from portability.registry import add_user, create_app
from portability.runs import create_run
from tests.fixtures.cli import PORTABILITY

USAGE_ERRORS = [
    (),
    ("runs",),
    ("db",),
    ("scheduler",),
    ("runs", "show"),
    ("runs", "show", "abc"),
    ("runs", "list", "--limit", "0"),
    ("runs", "list", "--status", "bogus"),
    ("runs", "list", "--since", "yesterday-ish"),
    ("runs", "retry"),
    ("runs", "retry", "1", "--failed"),
    ("bogus",),
    ("consume",),
    ("consume", "--bucket", "b", "--format", "parquet"),
    ("seed", "--users", "1", "--records-per-user", "1", "--countries", "XX"),
    ("db", "upgrade", "nope"),
    ("audit", "list", "--object", "run"),
]


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "PORTABILITY_DATABASE_URL": sqlite_url,
        "PORTABILITY_DATA_DIR": str(tmp_path / "state"),
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=lambda a: " ".join(a) or "no-arguments")
def test_every_usage_error_exits_2_with_one_error_line_and_the_usage(cli, env, args):
    result = cli(*args, env=env)

    assert result.exit_code == EXIT_USAGE, result.stderr
    lines = result.error_lines
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert all(line.startswith("Usage: portability") for line in lines[1:]), lines
    assert len(lines) <= 2, lines


def test_help_documents_the_exit_codes(cli):
    result = cli("--help")

    assert result.exit_code == EXIT_OK
    assert "0 success, 1 operation failed, 2 usage error, 3 not found, 130 interrupted" in (
        " ".join(result.stdout.split())
    )


def test_an_unmigrated_database_names_db_upgrade(cli, tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"

    result = cli("runs", "list", env={"PORTABILITY_DATABASE_URL": empty})

    assert result.exit_code == EXIT_FAILED
    assert len(result.error_lines) == 1
    assert "is not migrated" in result.stderr and "run `portability db upgrade`" in result.stderr


def test_an_unreachable_database_is_one_line_naming_the_setting(cli):
    closed = "postgresql://postgres@127.0.0.1:19398/test"

    result = cli("runs", "list", env={"PORTABILITY_DATABASE_URL": closed})

    assert result.exit_code == EXIT_FAILED
    [line] = result.error_lines
    assert "cannot use the database at postgresql://postgres@127.0.0.1:19398/test" in line
    assert "check PORTABILITY_DATABASE_URL" in line


def test_debug_shows_the_traceback(cli, tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"

    result = cli("--debug", "runs", "list", env={"PORTABILITY_DATABASE_URL": empty})

    assert result.exit_code == EXIT_FAILED
    assert "Traceback" in result.stderr


def test_a_missing_object_exits_3(cli, env):
    result = cli("apps", "show", "42", env=env)

    assert (result.exit_code, result.error_lines) == (EXIT_NOT_FOUND, ["error: app 42 not found"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["runs", "create", "--authorization", "99999999999999999999", "--destination", "1"],
            "authorization id 99999999999999999999 is not a valid id",
        ),
        (
            ["seed", "--users", "1", "--records-per-user", "1", "--countries", "\u0414\u0415"],
            "--countries '\u0414\u0415' is not an ISO 3166-1",
        ),
    ],
)
def test_values_the_database_would_refuse_are_refused_first_naming_the_field(
    cli, env, args, message
):
    result = cli(*args, env=env)

    assert result.exit_code == EXIT_USAGE
    assert len(result.error_lines) == 1 and message in result.error_lines[0]
    assert "[SQL" not in result.stderr


def test_the_console_script_keeps_the_exit_code_of_an_interrupted_command(sqlite_url, cli_env):
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as session:
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
            app_id=None,
            authorization_id=sample.authorization_id,
            destination_id=sample.destination_id,
            categories="posts",
        ).id
    engine.dispose()
    env = {**cli_env, "PORTABILITY_DATABASE_URL": sqlite_url}
    with subprocess.Popen(
        [PORTABILITY, "runs", "wait", str(run_id), "--interval", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert f"run {run_id}: queued" in process.stdout.readline()  # it is following the run
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)

    assert process.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err


def test_registry_refuses_text_longer_than_its_column(sqlite_url):
    from portability.errors import ValidationError

    sessions = make_session_factory(make_engine(sqlite_url))
    with sessions() as session, pytest.raises(ValidationError, match="app name is 1,048,576"):
        create_app(
            session,
            name="x" * 2**20,
            contact_email="a@b.example",
            use_case="a long enough use case",
        )


def test_logging_is_configured_once_however_often_commands_ask():
    import logging

    from portability.cli._logging import configure_logging

    configure_logging()
    configure_logging(long_running=True)

    mine = [h for h in logging.getLogger().handlers if h.get_name() == "portability-cli"]
    assert (len(mine), logging.getLogger().level) == (1, logging.INFO)


def test_a_failed_scheduler_step_logs_one_line_without_a_traceback(caplog):
    import logging

    from schedules.loop import log_step_failure

    caplog.set_level(logging.INFO)
    try:
        raise ConnectionError("connection refused\n[SQL: SELECT 1]")
    except ConnectionError as exc:
        log_step_failure(logging.getLogger("schedules.test"), "scheduler tick", exc, retry_in=5)

    [record] = caplog.records
    assert record.getMessage() == (
        "scheduler tick failed, retrying in 5.0 s: ConnectionError: connection refused"
    )
    assert record.exc_info is None
