"""Signed manifests: Ed25519 signatures that let a consumer tell our manifests from forgeries.

Anyone who can write to a developer's bucket can write a manifest; a signed one can only come
from us. The exporter signs each manifest with the newest key of
``PORTABILITY_MANIFEST_SIGNING_KEYS``; the public keys are published (``public_keys``, served
by the API at ``GET /v1/manifest-keys``) and a consumer given them refuses any manifest that is
unsigned or whose signature does not verify.

What is signed: the manifest object without its ``signature`` member, serialised as
``orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)`` (compact, keys sorted, UTF-8). The signature
travels inside the manifest::

    "signature": {"alg": "ed25519", "key_id": "3f1c0a9be27d4410", "value": "<base64, 64 bytes>"}

Key text (the setting, the key file, ``--verify-keys``): entries separated by commas or
newlines, each ``KEY_ID:BASE64`` or just ``BASE64`` -- a private key's 32 raw bytes for
signing, a public key's 32 raw bytes for verifying. Without a key id, the id is the first 16
hex digits of the SHA-256 of the raw public key. The first signing key signs; the others are
kept so their public keys stay published while consumers catch up (rotation: prepend a new
key, later drop the old one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from portability.errors import ConfigurationError, IntegrityError, ValidationError
from portability.keyfiles import read_or_create_key_file
from portability.settings import Settings
from portability.strict_json import StrictJSONError, loads_strict

__all__ = [
    "ALGORITHM",
    "KEY_FILE_NAME",
    "ManifestSigner",
    "SignatureError",
    "VerifyKey",
    "canonical_bytes",
    "key_id_of",
    "load_signers",
    "new_signing_key_text",
    "parse_signing_keys",
    "parse_verify_keys",
    "public_keys",
    "sign_manifest",
    "verify_manifest",
]

ALGORITHM = "ed25519"
KEY_FILE_NAME = "manifest-signing.key"
_SIGNATURE_BYTES = 64


class SignatureError(IntegrityError):
    """A manifest that is unsigned, or whose signature does not verify with the keys given."""


@dataclass(frozen=True)
class ManifestSigner:
    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def public_key(self) -> VerifyKey:
        return VerifyKey(self.key_id, self.private_key.public_key())


@dataclass(frozen=True)
class VerifyKey:
    key_id: str
    public_key: Ed25519PublicKey = field(repr=False)

    def raw(self) -> bytes:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def to_dict(self) -> dict[str, str]:
        """As published: ``{"key_id", "alg", "public_key"}`` (base64 of the 32 raw bytes)."""
        return {
            "key_id": self.key_id,
            "alg": ALGORITHM,
            "public_key": base64.b64encode(self.raw()).decode(),
        }


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The default key id: the first 16 hex digits of the SHA-256 of the raw public key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _entries(text: str) -> Iterable[tuple[str | None, bytes]]:
    for number, entry in enumerate(text.replace("\n", ",").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        key_id, _, encoded = entry.rpartition(":")
        # Either base64 alphabet; the message never repeats the key itself.
        standard = encoded.strip().replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(standard, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(f"key {number} is not base64") from None
        if len(raw) != 32:
            raise ValidationError(f"key {number} is {len(raw)} bytes, an Ed25519 key is 32")
        yield key_id.strip() or None, raw


def parse_signing_keys(text: str) -> list[ManifestSigner]:
    """Private keys in the key text format, newest (the one that signs) first."""
    signers = []
    for key_id, raw in _entries(text):
        private_key = Ed25519PrivateKey.from_private_bytes(raw)
        signers.append(ManifestSigner(key_id or key_id_of(private_key.public_key()), private_key))
    if not signers:
        raise ValidationError("no manifest signing key given")
    return signers


def parse_verify_keys(text: str) -> list[VerifyKey]:
    """Public keys to verify with: the key text format, or the JSON that ``GET
    /v1/manifest-keys`` serves (a list of ``{"key_id", "alg", "public_key"}``, bare or under
    ``"keys"``)."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"verify keys: not valid JSON ({exc})") from None
        items = document.get("keys") if isinstance(document, dict) else document
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValidationError('verify keys: expected a list of {"key_id", "public_key"}')
        stripped = ",".join(
            f"{item.get('key_id', '')}:{item.get('public_key', '')}"
            for item in items
            if item.get("alg", ALGORITHM) == ALGORITHM
        )
    keys = []
    for key_id, raw in _entries(stripped):
        public_key = Ed25519PublicKey.from_public_bytes(raw)
        keys.append(VerifyKey(key_id or key_id_of(public_key), public_key))
    if not keys:
        raise ValidationError("no manifest verify key given")
    return keys


def new_signing_key_text() -> str:
    """A fresh private key in the key text format (``KEY_ID:BASE64``)."""
    private_key = Ed25519PrivateKey.generate()
    raw = private_key.private_bytes_raw()
    return f"{key_id_of(private_key.public_key())}:{base64.b64encode(raw).decode()}"


def _key_file_text(settings: Settings) -> str:
    """The embedded default's key file (see ``portability.keyfiles``)."""
    path = settings.data_dir / KEY_FILE_NAME
    return read_or_create_key_file(path, lambda: (new_signing_key_text() + "\n").encode()).decode()


def load_signers(settings: Settings) -> list[ManifestSigner]:
    """The manifest signing keys, newest (the one that signs) first.

    From ``PORTABILITY_MANIFEST_SIGNING_KEYS``; when it is unset, only the embedded SQLite
    set-up (one host) falls back to a key file under ``data_dir`` -- anywhere else a missing
    key is an error, since every worker must sign with the same keys.
    """
    if settings.manifest_signing_keys is not None:
        return parse_signing_keys(settings.manifest_signing_keys.get_secret_value())
    if not settings.is_embedded_database:
        raise ConfigurationError(
            "PORTABILITY_MANIFEST_SIGNING_KEYS is not set: every worker needs the same manifest "
            "signing keys (generate one with `python -c 'from portability.signing import "
            "new_signing_key_text; print(new_signing_key_text())'`)"
        )
    return parse_signing_keys(_key_file_text(settings))


def public_keys(settings: Settings) -> list[dict[str, str]]:
    """What ``GET /v1/manifest-keys`` publishes: every signing key's public half, newest
    first, as ``{"key_id", "alg", "public_key"}``."""
    return [signer.public_key().to_dict() for signer in load_signers(settings)]


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the manifest without ``signature``, keys sorted."""
    unsigned = {name: value for name, value in manifest.items() if name != "signature"}
    return orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)


def sign_manifest(manifest_json: bytes, signer: ManifestSigner) -> bytes:
    """The manifest with its ``signature`` member set (any previous one replaced)."""
    manifest = orjson.loads(manifest_json)
    if not isinstance(manifest, dict):
        raise ValueError("a manifest is a JSON object")
    value = signer.private_key.sign(canonical_bytes(manifest))
    manifest["signature"] = {
        "alg": ALGORITHM,
        "key_id": signer.key_id,
        "value": base64.b64encode(value).decode(),
    }
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2)


def verify_manifest(raw: bytes, keys: Iterable[VerifyKey]) -> None:
    """Raise ``SignatureError`` unless ``raw`` is a manifest signed by one of ``keys``.

    The document is read strictly (a member named twice is refused: a signature must cover
    the one meaning every reader sees).
    """
    try:
        manifest = loads_strict(raw)
    except StrictJSONError as exc:
        raise SignatureError(f"cannot be verified: {exc}") from None
    if not isinstance(manifest, dict):
        raise SignatureError("cannot be verified: not a JSON object")
    signature = manifest.get("signature")
    if signature is None:
        raise SignatureError("is not signed, and this consumer accepts signed manifests only")
    if not isinstance(signature, dict) or signature.get("alg") != ALGORITHM:
        raise SignatureError(f'has no "signature" of the form {{"alg": "{ALGORITHM}", ...}}')
    key_id, value = signature.get("key_id"), signature.get("value")
    if not isinstance(key_id, str) or not isinstance(value, str):
        raise SignatureError("has a signature without a string key_id and value")
    by_id = {key.key_id: key for key in keys}
    if key_id not in by_id:
        raise SignatureError(
            f"is signed with key {key_id[:40]!r}, which is not among the verify keys "
            f"({', '.join(sorted(by_id)) or 'none'}): a forgery, or fetch the newest keys"
        )
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != _SIGNATURE_BYTES:
        raise SignatureError("has a signature value that is not 64 bytes of base64")
    try:
        by_id[key_id].public_key.verify(decoded, canonical_bytes(manifest))
    except InvalidSignature:
        raise SignatureError(
            f"has a signature that does not verify with key {key_id}: forged or altered"
        ) from None
