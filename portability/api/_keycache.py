"""A short-lived, in-process memory of verified API keys: the hot path's one saving.

A hit costs a dictionary lookup instead of a database round trip. Only keys of approved apps
are kept (so an approval shows at once), each for ``ttl`` seconds and never past the key's
own expiry; this process forgets its entries when it rotates, revokes or re-reads a key. A
revocation or suspension made by another process takes at most ``ttl`` seconds to bite.
"""

from __future__ import annotations

import time
from datetime import datetime

from portability.db.base import utcnow
from portability.keys import VerifiedKey

__all__ = ["KeyCache"]

_MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, VerifiedKey]] = {}

    def get(self, key_hash: str, now: datetime | None = None) -> VerifiedKey | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        until, verified = entry
        if time.monotonic() >= until or (
            verified.expires_at is not None and verified.expires_at <= (now or utcnow())
        ):
            self._entries.pop(key_hash, None)
            return None
        return verified

    def put(self, key_hash: str, verified: VerifiedKey) -> None:
        if self.ttl <= 0 or verified.app_status != "approved":
            return
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl, verified)

    def forget_app(self, app_id: int) -> None:
        for key_hash, (_until, verified) in list(self._entries.items()):
            if verified.app_id == app_id:
                self._entries.pop(key_hash, None)
