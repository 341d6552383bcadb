"""Encryption keys: several, newest first; required on a shared database; never shown."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from portability.crypto import CredentialBox
from portability.errors import ConfigurationError, ValidationError
from portability.settings import Settings

CREDENTIALS = {"access_key_id": "AKIA", "secret_access_key": "s3cr3t"}


def test_the_newest_key_seals_and_every_key_opens() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed_before = CredentialBox(old).seal(CREDENTIALS)
    box = CredentialBox([new, old])

    sealed_now = box.seal(CREDENTIALS)

    assert (box.open(sealed_before), CredentialBox(new).open(sealed_now)) == (
        CREDENTIALS,
        CREDENTIALS,
    )


def test_a_resealed_token_opens_with_the_newest_key_alone() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = CredentialBox(old).seal(CREDENTIALS)
    box = CredentialBox([new, old])

    resealed = box.reseal(token)

    assert (box.is_current(token), box.is_current(resealed)) == (False, True)
    assert CredentialBox(new).open(resealed) == CREDENTIALS


def test_a_token_no_key_opens_is_refused_without_showing_it() -> None:
    token = CredentialBox(Fernet.generate_key()).seal(CREDENTIALS)

    with pytest.raises(ValidationError, match="cannot be decrypted") as refused:
        CredentialBox(Fernet.generate_key()).open(token)

    assert token not in str(refused.value)


def test_the_keys_setting_is_newest_first_and_the_single_key_comes_last(tmp_path: Path) -> None:
    a, b, c = (Fernet.generate_key().decode() for _ in range(3))

    settings = Settings(data_dir=tmp_path, encryption_keys=f"{a}, {b}", encryption_key=c)

    assert settings.resolved_encryption_keys() == [a.encode(), b.encode(), c.encode()]


def test_a_missing_key_is_an_error_on_a_shared_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db.internal/app")

    with pytest.raises(ConfigurationError, match="PORTABILITY_ENCRYPTION_KEYS is not set"):
        settings.resolved_encryption_keys()

    assert list(tmp_path.iterdir()) == []


def test_the_embedded_default_keeps_one_key_file_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    first, again = settings.resolved_encryption_keys(), settings.resolved_encryption_keys()

    key_file = tmp_path / "data" / "encryption.key"
    assert first == again == [key_file.read_bytes().strip()]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["encryption.key"]


def test_processes_racing_to_create_the_key_file_all_get_the_same_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    start = threading.Barrier(8)

    def create() -> bytes:
        start.wait()
        return settings.resolved_encryption_keys()[0]

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: create(), range(8)))

    assert keys == {(tmp_path / "encryption.key").read_bytes().strip()}


def test_settings_never_show_a_dsn_password_or_a_key(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://app:db-password-1@db/app",
        broker_url="redis://default:broker-password-2@redis:6379/0",
        encryption_keys=key,
    )

    shown = repr(settings) + str(settings) + str(settings.model_dump())

    assert [s for s in ("db-password-1", "broker-password-2", key) if s in shown] == []
    assert settings.resolved_database_url == "postgresql+psycopg://app:db-password-1@db/app"


def test_rotating_without_keys_on_a_shared_database_exits_2_and_names_the_variable(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    env.update(
        PORTABILITY_DATA_DIR=str(tmp_path),
        PORTABILITY_DATABASE_URL="postgresql+psycopg://db.invalid/app",
    )

    result = subprocess.run(
        [str(Path(sys.executable).parent / "portability"), "keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stderr.splitlines()[0]) == (
        2,
        "error: PORTABILITY_ENCRYPTION_KEYS is not set: every host sharing this database needs "
        "the same key; create one with `portability keys generate`",
    )
