"""Per-app request rate limits: fixed windows counted in Redis, or in this process.

Each app may make ``limit`` requests per ``window`` seconds. Redis (``INCR`` plus ``EXPIRE``
in one pipeline, one round trip) shares the count between API processes; without Redis (the
embedded default) each process counts on its own. If Redis stops answering, the process counts
on its own rather than refuse every request.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol

__all__ = ["MemoryRateLimiter", "RateLimiter", "RedisRateLimiter", "make_limiter"]

log = logging.getLogger("portability.api")


class RateLimiter(Protocol):
    limit: int

    async def hit(self, app_id: int) -> int | None:
        """Count one request; ``None`` if allowed, else the seconds until the next window."""

    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self._counts: dict[int, tuple[int, int]] = {}

    async def hit(self, app_id: int) -> int | None:
        now = time.time()
        index = int(now // self.window)
        current, count = self._counts.get(app_id, (index, 0))
        count = count + 1 if current == index else 1
        self._counts[app_id] = (index, count)
        if count <= self.limit:
            return None
        return max(1, math.ceil((index + 1) * self.window - now))

    async def close(self) -> None:
        self._counts.clear()


class RedisRateLimiter:
    """Counts in Redis, taking ``batch`` requests of the window at a time.

    One ``INCRBY`` reserves a batch for this process, which then spends it without a round
    trip: the hot path asks Redis once per batch instead of once per request. The price is
    that each process may hold up to ``batch - 1`` unspent requests of a window, so a limit
    is exact to within ``(batch - 1) x processes``; small limits get a batch of one (exact).
    """

    def __init__(self, url: str, limit: int, window: int, prefix: str = "portability:rl") -> None:
        import redis.asyncio

        self.limit = limit
        self.window = window
        self.prefix = prefix
        self.batch = max(1, min(25, limit // 40))
        self._reserved: dict[int, tuple[int, int]] = {}
        self._client: Any = redis.asyncio.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._fallback = MemoryRateLimiter(limit, window)

    async def hit(self, app_id: int) -> int | None:
        from redis.exceptions import RedisError

        now = time.time()
        index = int(now // self.window)
        window, left = self._reserved.get(app_id, (index, 0))
        if window == index and left > 0:
            self._reserved[app_id] = (index, left - 1)
            return None
        key = f"{self.prefix}:{app_id}:{index}"
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.incrby(key, self.batch)
                pipe.expire(key, self.window + 1, nx=True)
                total, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("rate-limit Redis unavailable (%s); counting in this process", exc)
            return await self._fallback.hit(app_id)
        granted = min(self.batch, self.limit - (int(total) - self.batch))
        if granted > 0:
            self._reserved[app_id] = (index, granted - 1)
            return None
        return max(1, math.ceil((index + 1) * self.window - now))

    async def close(self) -> None:
        await self._client.aclose()


def make_limiter(url: str | None, limit: int, window: int) -> RateLimiter:
    if url:
        return RedisRateLimiter(url, limit, window)
    return MemoryRateLimiter(limit, window)
