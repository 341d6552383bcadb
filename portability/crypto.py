"""Secrets at rest: Fernet tokens, decrypted only in memory when used.

A ``CredentialBox`` holds several keys, newest first (``MultiFernet``): the newest seals, any
of them opens. Rotating is adding a new key in front, re-sealing every stored token under it
(``portability keys rotate``), then dropping the old key.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from portability.errors import ValidationError

__all__ = ["CredentialBox"]


class CredentialBox:
    """Seals and opens credential dictionaries; ``keys`` is one key or several, newest first."""

    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        key_list = [keys] if isinstance(keys, bytes | str) else list(keys)
        if not key_list:
            raise ValidationError("at least one encryption key is needed")
        try:
            fernets = [Fernet(key) for key in key_list]
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                "encryption key is not a valid Fernet key (32 url-safe base64 bytes); "
                "generate one with: portability keys generate"
            ) from exc
        self._newest = fernets[0]
        self._fernet = MultiFernet(fernets)

    def seal(self, credentials: dict[str, str]) -> str:
        return self._newest.encrypt(orjson.dumps(credentials)).decode()

    def open(self, token: str) -> dict[str, str]:
        try:
            data = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValidationError(
                "stored credentials cannot be decrypted with any configured encryption key "
                "(PORTABILITY_ENCRYPTION_KEYS lost the key they were sealed with?)"
            ) from None
        return {str(k): str(v) for k, v in data.items()}

    def is_current(self, token: str) -> bool:
        """True when ``token`` is sealed under the newest key (rotation skips it)."""
        try:
            self._newest.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, token: str) -> str:
        """``token``'s content sealed under the newest key; ``ValidationError`` if no key opens
        it. The new token's timestamp is the original's, as ``MultiFernet.rotate`` keeps it."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ValidationError(
                "a stored secret cannot be decrypted with any configured encryption key"
            ) from None
