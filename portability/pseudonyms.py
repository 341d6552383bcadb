"""Per-app user pseudonyms (placeholder until the keyed implementation lands)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

__all__ = ["Pseudonymizer", "pseudonym"]


def pseudonym(key: bytes, app_id: int, user_id: str) -> str:
    digest = hmac.new(key, f"{app_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"p_{digest[:24]}"


class Pseudonymizer:
    def __init__(self, key: bytes, app_id: int, owner_user_id: str) -> None:
        self.owner = pseudonym(key, app_id, owner_user_id)
        self._needle = f'"{owner_user_id}"'.encode()
        self._replacement = f'"{self.owner}"'.encode()

    def rewriter(self, category: str) -> Callable[[bytes], bytes]:
        def rewrite(body: bytes) -> bytes:
            return body.replace(self._needle, self._replacement)

        return rewrite
