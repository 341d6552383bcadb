"""The seeder's records rendered as change-feed blocks in memory, without a database.

For the pseudonym tests and ``bench/pseudonyms.py``: the same generator and the same line
rendering as ``platform.seed``, so a block holds exactly the bytes a full export of that user
would stream (``ChangeBatch.body``).
"""

from __future__ import annotations

from dataclasses import dataclass

from portability.categories import Category
from portability.platform._bulk import fast_change_line
from portability.platform._generate import Generator, plan_user
from portability.platform.seed import DEFAULT_NOW
from portability.records import Op

__all__ = ["SeededBlocks", "seeded_blocks"]


@dataclass(frozen=True)
class SeededBlocks:
    user_ids: tuple[str, ...]
    #: user id -> category -> every record of that user and category, one JSON line each.
    blocks: dict[str, dict[Category, bytes]]


def seeded_blocks(
    users: int, records_per_user: int, seed: int = 42, *, owners: int | None = None
) -> SeededBlocks:
    """Users ``u000001``... with their records, as ``seed(users=..., ...)`` would store them.

    ``owners`` (default all) limits whose records are made: the other users still exist as the
    peers, follows and post authors of those.
    """
    user_ids = tuple(f"u{n:06d}" for n in range(1, users + 1))
    plans = [plan_user(user_id, seed, (["DE"], [1.0])) for user_id in user_ids]
    end_us = int(DEFAULT_NOW.timestamp() * 1_000_000)
    generator = Generator(plans, records_per_user, end_us, seed)
    generator.plans = plans[:owners]
    user_ids = user_ids[:owners]
    lines: dict[str, dict[Category, list[str]]] = {u: {c: [] for c in Category} for u in user_ids}
    for user_id, category, record_id, changed_at, data in generator.records():
        lines[user_id][category].append(fast_change_line(record_id, Op.UPSERT, changed_at, data))
    blocks = {
        user_id: {c: "".join(f"{line}\n" for line in by[c]).encode() for c in Category}
        for user_id, by in lines.items()
    }
    return SeededBlocks(user_ids=user_ids, blocks=blocks)
