"""Destination credentials at rest: Fernet tokens, decrypted only in memory when used."""

from __future__ import annotations

import orjson
from cryptography.fernet import Fernet, InvalidToken

from portability.errors import ValidationError

__all__ = ["CredentialBox"]


class CredentialBox:
    """Encrypts and decrypts credential dictionaries with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                "encryption key is not a valid Fernet key (32 url-safe base64 bytes); "
                "generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from exc

    def seal(self, credentials: dict[str, str]) -> str:
        return self._fernet.encrypt(orjson.dumps(credentials)).decode()

    def open(self, token: str) -> dict[str, str]:
        try:
            data = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValidationError(
                "stored credentials cannot be decrypted with the configured encryption key "
                "(PORTABILITY_ENCRYPTION_KEY changed?)"
            ) from None
        return {str(k): str(v) for k, v in data.items()}
