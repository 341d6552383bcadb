"""Promise 10: secrets never appear in Celery's configuration, as Celery shows it to anyone
who can reach the broker (``celery inspect conf``, Flower) or reads a pasted ``celery report``.

A real worker runs with a database URL and a broker URL that each carry a password (PostgreSQL
trusts the test connection and Redis's default user takes any password, so both still work),
and with an encryption key; none of the three may come back.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from portability.settings import Settings
from tests.fixtures.workers import CELERY, REDIS_HOST, REDIS_PORT, REDIS_TEST_DB

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def secret_env(worker_env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The worker's environment with a password in each URL; returns it and the secrets."""
    db_password, broker_password = f"dbpw-{uuid.uuid4().hex}", f"brokerpw-{uuid.uuid4().hex}"
    key = Fernet.generate_key().decode()
    database_url = make_url(worker_env["PORTABILITY_DATABASE_URL"]).set(password=db_password)
    env = dict(
        worker_env,
        PORTABILITY_DATABASE_URL=database_url.render_as_string(hide_password=False),
        PORTABILITY_BROKER_URL=(
            f"redis://default:{broker_password}@{REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}"
        ),
        PORTABILITY_ENCRYPTION_KEYS=key,
    )
    env.pop("PORTABILITY_ENCRYPTION_KEY", None)
    return env, [db_password, broker_password, key]


def test_celery_inspect_conf_shows_no_password_or_key(secret_env, start_worker):
    env, secrets = secret_env
    start_worker(env=env, name="secrets")
    from workers.app import create_app

    app = create_app(Settings(broker_url=env["PORTABILITY_BROKER_URL"]))
    replies = app.control.inspect(timeout=10, limit=1).conf(with_defaults=True)

    shown = json.dumps(replies)
    assert replies, "no worker answered"
    assert "broker_url" in shown
    assert [secret for secret in secrets if secret in shown] == []


def test_celery_report_shows_no_password_or_key(secret_env):
    env, secrets = secret_env

    report = subprocess.run(
        [CELERY, "-A", "workers", "report"], env=env, capture_output=True, text=True, timeout=60
    )

    assert report.returncode == 0, report.stderr
    assert "broker_url" in report.stdout
    assert [secret for secret in secrets if secret in report.stdout + report.stderr] == []
