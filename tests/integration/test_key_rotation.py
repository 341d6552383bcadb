"""Keys that rotate: every stored credential re-sealed under the newest key, restartably.

Runs on PostgreSQL with 500 destinations sealed under the old key, re-sealed in batches.
"""

from __future__ import annotations

import json

import pytest
import typer
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from portability import registry
from portability.cli import keys as keys_cli
from portability.crypto import CredentialBox
from portability.db.engine import make_session_factory
from portability.rotation import RotationReport, rotate_secrets

pytestmark = pytest.mark.services

DESTINATIONS = 500
OLD, NEW = Fernet.generate_key(), Fernet.generate_key()


class InterruptedRotationError(Exception):
    pass


@pytest.fixture
def sealed_under_old_key(pg_engine: Engine) -> Engine:
    box = CredentialBox(OLD)
    with make_session_factory(pg_engine).begin() as session:
        app, _ = registry.create_app(
            session, name="Acme", contact_email="dev@acme.example", use_case="Backs up the posts."
        )
        for n in range(DESTINATIONS):
            registry.add_destination(
                session,
                box,
                app_id=app.id,
                bucket=f"bucket-{n:04d}",
                access_key_id=f"AKIA{n:04d}",
                secret_access_key=f"secret-{n}",
            )
    return pg_engine


def opened_with_new_key_alone(engine: Engine) -> list[str]:
    """Every destination's secret, opened with the new key only (raises if one cannot be)."""
    box = CredentialBox(NEW)
    with engine.connect() as conn:
        tokens = conn.execute(
            text("SELECT credentials_encrypted FROM destinations ORDER BY id")
        ).scalars()
        return [box.open(token)["secret_access_key"] for token in tokens]


def test_after_rotating_every_credential_opens_with_the_new_key_alone(sealed_under_old_key):
    report = rotate_secrets(sealed_under_old_key, CredentialBox([NEW, OLD]), batch_size=200)

    assert (report.rotated, report.skipped, report.unreadable, report.batches) == (500, 0, [], 3)
    assert opened_with_new_key_alone(sealed_under_old_key) == [
        f"secret-{n}" for n in range(DESTINATIONS)
    ]


def test_an_interrupted_rotation_resumes_and_skips_what_it_already_did(sealed_under_old_key):
    box = CredentialBox([NEW, OLD])

    def stop_after_two_batches(report: RotationReport) -> None:
        if report.batches == 2:
            raise InterruptedRotationError

    with pytest.raises(InterruptedRotationError):
        rotate_secrets(sealed_under_old_key, box, batch_size=100, progress=stop_after_two_batches)
    resumed = rotate_secrets(sealed_under_old_key, box, batch_size=100)

    assert (resumed.rotated, resumed.skipped) == (300, 200)
    assert len(opened_with_new_key_alone(sealed_under_old_key)) == DESTINATIONS


def test_keys_rotate_prints_its_counts_as_json(sealed_under_old_key, pg_url, monkeypatch):
    monkeypatch.setenv("PORTABILITY_DATABASE_URL", pg_url)
    monkeypatch.setenv("PORTABILITY_ENCRYPTION_KEYS", f"{NEW.decode()},{OLD.decode()}")
    app = typer.Typer()
    keys_cli.register(app)

    first = CliRunner().invoke(app, ["keys", "rotate", "--json"])
    again = CliRunner().invoke(app, ["keys", "rotate", "--json"])

    assert first.exit_code == again.exit_code == 0, first.output + again.output
    counts = [json.loads(r.stdout) for r in (first, again)]
    assert [(c["keys"], c["rotated"], c["skipped"]) for c in counts] == [(2, 500, 0), (2, 0, 500)]
