"""Retry delays: exponential with full jitter, capped."""

from __future__ import annotations

import random

__all__ = ["retry_delay"]


def retry_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: uniform in [base/2, min(cap, base*2^n)]."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(min(base / 2, ceiling), ceiling)
