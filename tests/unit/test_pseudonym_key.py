"""``PORTABILITY_PSEUDONYM_KEY``: required on a server database, a private key file otherwise."""

from __future__ import annotations

import stat

import pydantic
import pytest

from portability.errors import ConfigurationError
from portability.settings import Settings

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch):
    for name in ("PORTABILITY_PSEUDONYM_KEY", "PORTABILITY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_pseudonym_key_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTABILITY_PSEUDONYM_KEY", SECRET)

    assert Settings(data_dir=tmp_path).resolved_pseudonym_key() == SECRET.encode()
    assert not (tmp_path / "pseudonym.key").exists()


def test_a_server_database_without_a_pseudonym_key_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db/portability")

    with pytest.raises(ConfigurationError, match="PORTABILITY_PSEUDONYM_KEY is not set"):
        settings.resolved_pseudonym_key()


def test_a_pseudonym_key_shorter_than_32_characters_is_refused():
    with pytest.raises(pydantic.ValidationError, match="pseudonym_key"):
        Settings(pseudonym_key="short")


def test_the_embedded_default_creates_one_private_key_file_and_keeps_it(tmp_path):
    data_dir = tmp_path / "data"
    first = Settings(data_dir=data_dir).resolved_pseudonym_key()
    again = Settings(data_dir=data_dir).resolved_pseudonym_key()

    key_file = data_dir / "pseudonym.key"
    assert len(first) >= 32
    assert again == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == ["pseudonym.key"]


def test_an_existing_key_file_is_used_as_it_is(tmp_path):
    (tmp_path / "pseudonym.key").write_text(SECRET + "\n")

    assert Settings(data_dir=tmp_path).resolved_pseudonym_key() == SECRET.encode()


def test_the_key_never_appears_in_the_settings_repr():
    assert SECRET not in repr(Settings(pseudonym_key=SECRET))
