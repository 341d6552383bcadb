"""Random edits and deletes of one user's records: new changes for an incremental export.

``mutate`` picks records with a seeded ``random.Random`` (same store, same seed, same picks),
changes a few fields of each (captions, counts, bodies, ``updated_at``/``edited_at`` = now),
deletes others (tombstones in the feed) and writes everything through ``store.write_changes``
in one transaction. Profiles are edited but never deleted: a profile goes with the account.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from portability.categories import Category, parse_categories
from portability.db.base import utcnow
from portability.errors import NotFoundError, ValidationError
from portability.platform.shapes import Data, shape_for
from portability.platform.store import record_ids, write_changes
from portability.records import format_timestamp

__all__ = ["MutationReport", "mutate"]

_EDIT_TAGS = ("edit", "update", "throwback", "part2", "repost")
_BIO_LINES = ("New chapter ✨", "Back on here!", "Now in Lisboa", "Links below 👇", "")
_EDIT_BODIES = ("(edited) sorry, typo", "nvm 😅", "see you at 9 instead", "ok ok")


@dataclass(frozen=True)
class MutationReport:
    user_id: str
    updated: dict[Category, list[str]] = field(default_factory=dict)
    deleted: dict[Category, list[str]] = field(default_factory=dict)
    changed_at: datetime | None = None

    @property
    def changes(self) -> int:
        return sum(map(len, self.updated.values())) + sum(map(len, self.deleted.values()))


def mutate(
    engine: Engine,
    *,
    user_id: str,
    updates: int,
    deletes: int,
    seed: int = 7,
    categories: Iterable[str] | str | None = None,
    now: datetime | None = None,
) -> MutationReport:
    """Apply ``updates`` edits and ``deletes`` deletions to ``user_id``'s records.

    Refuses (``ValidationError``) to pick more records than the user has in ``categories``
    (default all); a user with no records at all is ``NotFoundError``.
    """
    if updates < 0 or deletes < 0:
        raise ValidationError("updates and deletes must not be negative")
    chosen = sorted(parse_categories(categories)) if categories is not None else sorted(Category)
    rng = random.Random(seed)
    when = now or utcnow()
    with engine.begin() as conn:
        pool = [(c, rid) for c in chosen for rid in record_ids(conn, user_id, c)]
        if not pool:
            raise NotFoundError(
                f"user {user_id} has no records in {', '.join(chosen)}: seed some first"
            )
        deletable = [item for item in pool if item[0] is not Category.PROFILE]
        if deletes > len(deletable):
            raise ValidationError(
                f"cannot delete {deletes} records: user {user_id} has {len(deletable)} "
                f"deletable records in {', '.join(chosen)} (profiles are never deleted)"
            )
        to_delete = rng.sample(deletable, deletes)
        gone = set(to_delete)
        remaining = [item for item in pool if item not in gone]
        if updates > len(remaining):
            raise ValidationError(
                f"cannot update {updates} records: user {user_id} has {len(remaining)} left "
                f"in {', '.join(chosen)} after {deletes} deletes"
            )
        to_update = rng.sample(remaining, updates)
        report = MutationReport(user_id=user_id, changed_at=when)
        for category in chosen:
            edit_ids = sorted(rid for c, rid in to_update if c is category)
            delete_ids = sorted(rid for c, rid in to_delete if c is category)
            if not edit_ids and not delete_ids:
                continue
            current = _load(conn, user_id, category, edit_ids)
            edited = {rid: _edit(category, current[rid], rng, when) for rid in edit_ids}
            write_changes(
                conn, user_id, category, upserts=edited, deletes=delete_ids, changed_at=when
            )
            if edit_ids:
                report.updated[category] = edit_ids
            if delete_ids:
                report.deleted[category] = delete_ids
    return report


def _load(conn: Connection, user_id: str, category: Category, ids: list[str]) -> dict[str, Data]:
    if not ids:
        return {}
    shape = shape_for(category)
    table = shape.table
    key = table.c[shape.key]
    rows = conn.execute(select(table).where(key.in_(ids), table.c.user_id == user_id)).mappings()
    return {row[shape.key]: shape.to_data(row) for row in rows}


def _edit(category: Category, data: Data, rng: random.Random, when: datetime) -> Data:
    """A plausible edit of one record; returns a new dict."""
    stamp = format_timestamp(when)
    data = dict(data)
    if category is Category.PROFILE:
        data["bio"] = rng.choice(_BIO_LINES)
        data["follower_count"] += rng.randrange(0, 500)
        data["following_count"] += rng.randrange(-3, 10)
        data["following_count"] = max(0, data["following_count"])
        data["updated_at"] = stamp
    elif category is Category.POSTS:
        tag = rng.choice(_EDIT_TAGS)
        if tag not in data["hashtags"]:
            data["hashtags"] = [*data["hashtags"], tag]
            data["caption"] = f"{data['caption']} #{tag}"
        data["like_count"] += rng.randrange(0, 1000)
        if rng.random() < 0.2:
            data["privacy"] = rng.choice(("public", "friends", "private"))
        data["updated_at"] = stamp
    elif category is Category.ACTIVITY:
        detail = dict(data["detail"])
        if data["kind"] == "watch":
            detail["watched_ms"] = detail.get("watched_ms", 0) + rng.randrange(1_000, 60_000)
            detail["rewatched"] = True
        else:
            detail["revised"] = True
        data["detail"] = detail
    else:
        data["body"] = rng.choice(_EDIT_BODIES)
        data["edited_at"] = stamp
    return data
