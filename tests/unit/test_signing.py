"""Manifest signatures: what is signed, what verifies, where the keys come from."""

from __future__ import annotations

import base64
import stat

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portability.destinations.memory import MemoryDestination
from portability.errors import ConfigurationError, ValidationError
from portability.settings import Settings
from portability.signing import (
    KEY_FILE_NAME,
    SignatureError,
    canonical_bytes,
    load_signers,
    new_signing_key_text,
    parse_signing_keys,
    parse_verify_keys,
    public_keys,
    sign_manifest,
    verify_manifest,
)
from tests.fixtures.exports import ExportWriter, changes

OLD, NEW = new_signing_key_text(), new_signing_key_text()


@pytest.fixture
def manifest_json() -> bytes:
    writer = ExportWriter(MemoryDestination(), prefix="exports", records_per_part=10)
    return writer.deliver(list(changes("posts", "u1", 25))).manifest.to_json()


def keys_of(text: str):
    return [signer.public_key() for signer in parse_signing_keys(text)]


def test_a_signed_manifest_verifies_with_its_public_key(manifest_json):
    (signer,) = parse_signing_keys(NEW)

    signed = sign_manifest(manifest_json, signer)

    verify_manifest(signed, keys_of(NEW))
    document = orjson.loads(signed)
    assert document["signature"]["alg"] == "ed25519"
    assert document["signature"]["key_id"] == NEW.split(":")[0]
    assert base64.b64decode(document["signature"]["value"]).__len__() == 64


def test_the_signature_covers_the_manifest_without_itself_keys_sorted(manifest_json):
    (signer,) = parse_signing_keys(NEW)
    signed = orjson.loads(sign_manifest(manifest_json, signer))
    value = base64.b64decode(signed["signature"]["value"])
    unsigned = {k: v for k, v in orjson.loads(manifest_json).items() if k != "signature"}

    signer.private_key.public_key().verify(
        value, orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)
    )
    assert canonical_bytes(signed) == orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)


def test_an_unsigned_manifest_is_refused(manifest_json):
    with pytest.raises(SignatureError, match="is not signed"):
        verify_manifest(manifest_json, keys_of(NEW))


@pytest.mark.parametrize(
    ("field", "value"), [("reset", False), ("records", 0), ("user", "u2"), ("parts", [])]
)
def test_a_manifest_altered_after_signing_is_refused_as_forged(manifest_json, field, value):
    signed = orjson.loads(sign_manifest(manifest_json, parse_signing_keys(NEW)[0]))
    signed[field] = value

    with pytest.raises(SignatureError, match="forged or altered"):
        verify_manifest(orjson.dumps(signed), keys_of(NEW))


def test_a_manifest_signed_with_a_key_not_listed_is_refused(manifest_json):
    signed = sign_manifest(manifest_json, parse_signing_keys(OLD)[0])

    with pytest.raises(SignatureError, match="not among the verify keys"):
        verify_manifest(signed, keys_of(NEW))


def test_a_signature_by_another_key_under_a_listed_key_id_is_refused(manifest_json):
    kid = NEW.split(":")[0]
    impostor = parse_signing_keys(f"{kid}:{OLD.split(':')[1]}")[0]

    with pytest.raises(SignatureError, match="forged or altered"):
        verify_manifest(sign_manifest(manifest_json, impostor), keys_of(NEW))


def test_a_signed_manifest_with_a_member_added_twice_is_refused(manifest_json):
    signed = sign_manifest(manifest_json, parse_signing_keys(NEW)[0])
    doubled = signed.replace(b'"reset": true', b'"reset": true,\n  "reset": false')
    assert doubled != signed

    with pytest.raises(SignatureError, match="appears twice"):
        verify_manifest(doubled, keys_of(NEW))


def test_after_rotation_the_old_key_still_verifies_while_it_is_listed(manifest_json):
    rotated = f"{NEW},{OLD}"
    signed_before = sign_manifest(manifest_json, parse_signing_keys(OLD)[0])
    signed_after = sign_manifest(manifest_json, parse_signing_keys(rotated)[0])

    verify_manifest(signed_before, keys_of(rotated))
    verify_manifest(signed_after, keys_of(rotated))
    assert orjson.loads(signed_after)["signature"]["key_id"] == NEW.split(":")[0]


def test_public_keys_publish_every_key_newest_first_and_parse_back(tmp_path):
    settings = Settings(data_dir=tmp_path, manifest_signing_keys=f"{NEW},{OLD}")

    published = public_keys(settings)

    assert [key["key_id"] for key in published] == [NEW.split(":")[0], OLD.split(":")[0]]
    assert {key["alg"] for key in published} == {"ed25519"}
    assert [k.raw() for k in parse_verify_keys(orjson.dumps(published).decode())] == [
        k.raw() for k in keys_of(f"{NEW},{OLD}")
    ]
    assert [k.key_id for k in parse_verify_keys(orjson.dumps({"keys": published}).decode())] == [
        key["key_id"] for key in published
    ]


def test_a_key_without_an_id_gets_the_hash_of_its_public_key():
    private = Ed25519PrivateKey.generate()
    text = base64.b64encode(private.private_bytes_raw()).decode()

    (signer,) = parse_signing_keys(text)

    assert signer.key_id == signer.public_key().key_id
    assert len(signer.key_id) == 16
    assert signer.key_id == parse_signing_keys(text)[0].key_id


@pytest.mark.parametrize(
    "text", ["", "kid:not base64!", "kid:" + base64.b64encode(b"x" * 31).decode()]
)
def test_malformed_key_text_is_refused_without_echoing_it(text):
    with pytest.raises(ValidationError) as caught:
        parse_signing_keys(text)

    assert "not base64!" not in str(caught.value)


def test_the_signing_keys_setting_is_secret(tmp_path):
    settings = Settings(data_dir=tmp_path, manifest_signing_keys=NEW)

    assert NEW.split(":")[1] not in repr(settings)
    assert NEW.split(":")[1] not in str(settings.model_dump())


def test_a_missing_signing_key_is_an_error_outside_the_embedded_sqlite(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db/portability")

    with pytest.raises(ConfigurationError, match="PORTABILITY_MANIFEST_SIGNING_KEYS"):
        load_signers(settings)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_the_embedded_default_creates_one_private_key_file_and_keeps_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")

    first = load_signers(settings)
    again = load_signers(settings)

    key_file = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [s.key_id for s in first] == [s.key_id for s in again]
    assert sorted(p.name for p in key_file.parent.iterdir()) == [KEY_FILE_NAME]  # no temp left


def test_a_key_file_created_meanwhile_by_another_process_wins(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    theirs = new_signing_key_text()
    import portability.signing as signing

    made = signing.new_signing_key_text

    def racing() -> str:
        (tmp_path / KEY_FILE_NAME).write_text(theirs + "\n")  # the other process got there first
        return made()

    monkeypatch.setattr(signing, "new_signing_key_text", racing)

    (signer,) = load_signers(settings)

    assert signer.key_id == theirs.split(":")[0]
