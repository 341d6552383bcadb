"""Synthetic platform data: realistic, varied and reproducible, fast enough for benchmarks.

``seed(engine, users=N, records_per_user=M)`` creates users ``u000001``... (continuing after the
highest existing ``uNNNNNN`` id, so seeding twice never collides), each with one profile and
``M - 1`` other records split roughly posts 20 %, activity 55 %, direct messages 25 %, dated
over the year before ``now``. Every user's data comes from its own ``random.Random`` seeded with
``(seed, user id)``, so the same arguments give byte-identical feed lines whatever else is in the
store. Writing goes through ``store.load_records`` (``COPY`` on PostgreSQL) in one transaction:
a failed seed leaves nothing behind.

What the records hold is decided in ``_generate`` (from the words in ``_vocabulary``); this
module numbers the users, picks their countries and runs the load.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from portability.categories import EEA_COUNTRIES, Category
from portability.db.models import PlatformUser
from portability.errors import ValidationError
from portability.platform._generate import Generator, format_micros, plan_user, split_counts
from portability.platform.store import add_platform_users, load_records

__all__ = [
    "DEFAULT_COUNTRIES",
    "DEFAULT_NOW",
    "SeedReport",
    "format_micros",
    "seed",
    "split_counts",
]

#: Mostly EEA users (weighted roughly by population), plus a few from elsewhere who may not grant.
DEFAULT_COUNTRIES: Mapping[str, float] = {
    "DE": 16, "FR": 13, "IT": 11, "ES": 9, "PL": 7, "NL": 4, "RO": 4, "BE": 2.5, "SE": 2.2,
    "CZ": 2, "PT": 2, "GR": 2, "HU": 1.8, "AT": 1.8, "DK": 1.2, "FI": 1.1, "IE": 1.1, "NO": 1.1,
    "SK": 1, "BG": 1, "HR": 0.8, "LT": 0.6, "SI": 0.5, "LV": 0.4, "EE": 0.3, "CY": 0.2,
    "LU": 0.2, "MT": 0.1, "IS": 0.1, "LI": 0.05,
    "GB": 3, "CH": 1, "US": 2, "TR": 1, "BR": 0.5,
}  # fmt: skip

#: The default reference time: seeded data covers the year before it. Fixed, so that the same
#: seed gives the same bytes on any day.
DEFAULT_NOW = datetime(2026, 1, 1, tzinfo=UTC)

_USER_ID = re.compile(r"^u(\d{6,})$")


@dataclass(frozen=True)
class SeedReport:
    user_ids: tuple[str, ...]
    records: int
    per_category: dict[Category, int]
    seconds: float
    countries: dict[str, int] = field(default_factory=dict)

    @property
    def eea_users(self) -> int:
        return sum(n for country, n in self.countries.items() if country in EEA_COUNTRIES)


def seed(
    engine: Engine,
    *,
    users: int,
    records_per_user: int,
    seed: int = 42,
    countries: Mapping[str, float] | Sequence[str] | None = None,
    now: datetime | None = None,
    first_user: int | None = None,
) -> SeedReport:
    """Create ``users`` users with ``records_per_user`` records each (profile included).

    ``first_user`` numbers the first new user (default: one past the highest ``uNNNNNN``
    already stored); a range that overlaps stored users is refused (``ValidationError``).
    ``countries`` is a list of ISO codes or a code -> weight mapping (default
    ``DEFAULT_COUNTRIES``); ``now`` ends the year the data spans (default ``DEFAULT_NOW``).
    """
    if users < 1:
        raise ValidationError(f"users must be at least 1, not {users}")
    if records_per_user < 1:
        raise ValidationError(
            f"records per user must be at least 1 (the profile), not {records_per_user}"
        )
    weights = _country_weights(countries)
    anchor = now or DEFAULT_NOW
    if anchor.tzinfo is None:
        raise ValidationError("now must be a timezone-aware datetime")
    started = time.perf_counter()
    with engine.begin() as conn:
        start = first_user if first_user is not None else _next_user_number(conn)
        user_ids = [f"u{n:06d}" for n in range(start, start + users)]
        taken = _existing(conn, user_ids)
        if taken:
            raise ValidationError(
                f"users {', '.join(taken[:3])}{'...' if len(taken) > 3 else ''} already exist: "
                "leave first_user unset to continue after the highest seeded id"
            )
        plans = [plan_user(user_id, seed, weights) for user_id in user_ids]
        add_platform_users(
            conn, [(p.user_id, p.country) for p in plans], created_at=anchor - timedelta(days=366)
        )
        end_us = int(anchor.timestamp() * 1_000_000)
        generator = Generator(plans, records_per_user, end_us, seed)
        loaded = load_records(conn, generator.records())
    countries_seen: dict[str, int] = {}
    for plan in plans:
        countries_seen[plan.country] = countries_seen.get(plan.country, 0) + 1
    return SeedReport(
        user_ids=tuple(user_ids),
        records=loaded.records,
        per_category=loaded.per_category,
        seconds=time.perf_counter() - started,
        countries=countries_seen,
    )


def _country_weights(
    countries: Mapping[str, float] | Sequence[str] | None,
) -> tuple[list[str], list[float]]:
    if countries is None:
        countries = DEFAULT_COUNTRIES
    pairs = (
        list(countries.items()) if isinstance(countries, Mapping) else [(c, 1.0) for c in countries]
    )
    if not pairs:
        raise ValidationError("countries must name at least one country")
    for code, weight in pairs:
        if len(code) != 2 or not code.isalpha() or code != code.upper():
            raise ValidationError(f"country {code!r} must be a two-letter upper-case ISO code")
        if weight < 0:
            raise ValidationError(f"country weight for {code} must not be negative")
    return [c for c, _ in pairs], [float(w) for _, w in pairs]


def _existing(conn: Connection, user_ids: list[str]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(user_ids), 500):
        chunk = user_ids[start : start + 500]
        found += conn.scalars(select(PlatformUser.id).where(PlatformUser.id.in_(chunk)))
    return sorted(found)


def _next_user_number(conn: Connection) -> int:
    """One past the highest ``uNNNNNN`` id stored (longest first: u1000000 > u999999)."""
    ids = conn.scalars(
        select(PlatformUser.id)
        .where(PlatformUser.id.like("u%"))
        .order_by(func.length(PlatformUser.id).desc(), PlatformUser.id.desc())
    )
    for user_id in ids:
        match = _USER_ID.match(user_id)
        if match:
            return int(match.group(1)) + 1
    return 1
