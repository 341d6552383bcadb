"""Synthetic platform data: realistic, varied and reproducible, fast enough for benchmarks.

``seed(engine, users=N, records_per_user=M)`` creates users ``u000001``... (continuing after the
highest existing ``uNNNNNN`` id, so seeding twice never collides), each with one profile and
``M - 1`` other records split roughly posts 20 %, activity 55 %, direct messages 25 %, dated
over the year before ``now``. Every user's data comes from its own ``random.Random`` seeded with
``(seed, user id)``, so the same arguments give byte-identical feed lines whatever else is in the
store. Writing goes through ``store.load_records`` (``COPY`` on PostgreSQL) in one transaction:
a failed seed leaves nothing behind.
"""

from __future__ import annotations

import random
import re
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine, func, select

from portability.categories import EEA_COUNTRIES, Category
from portability.db.models import PlatformUser
from portability.errors import ValidationError
from portability.platform.shapes import Data
from portability.platform.store import SeedRecord, add_platform_users, load_records

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

_T = TypeVar("_T")
_POOL = 4096
_YEAR_US = 365 * 86_400_000_000
_USER_ID = re.compile(r"^u(\d{6,})$")
_SHARES = {Category.POSTS: 0.20, Category.DIRECT_MESSAGES: 0.25}


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
        plans = [_plan(user_id, seed, weights) for user_id in user_ids]
        add_platform_users(
            conn, [(p.user_id, p.country) for p in plans], created_at=anchor - timedelta(days=366)
        )
        end_us = int(anchor.timestamp() * 1_000_000)
        generator = _Generator(plans, records_per_user, end_us, seed)
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


def split_counts(records_per_user: int) -> dict[Category, int]:
    """How a user's records divide among the categories (the profile is always one)."""
    rest = records_per_user - 1
    posts = round(rest * _SHARES[Category.POSTS])
    messages = round(rest * _SHARES[Category.DIRECT_MESSAGES])
    return {
        Category.PROFILE: 1,
        Category.POSTS: posts,
        Category.ACTIVITY: rest - posts - messages,
        Category.DIRECT_MESSAGES: messages,
    }


_DAYS: dict[int, str] = {}
_CLOCK: list[str] = []
_EPOCH_DATE = date(1970, 1, 1)


def format_micros(micros: int) -> str:
    """``format_timestamp`` of a UTC epoch in microseconds, without a datetime (much faster).

    Day and time-of-day prefixes come from tables: the seeder formats millions of timestamps.
    """
    if not _CLOCK:
        _CLOCK.extend(
            f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60)
        )
    seconds, fraction = divmod(micros, 1_000_000)
    days, second = divmod(seconds, 86_400)
    day = _DAYS.get(days)
    if day is None:
        day = _DAYS[days] = (_EPOCH_DATE + timedelta(days=days)).isoformat() + "T"
    return f"{day}{_CLOCK[second]}{fraction:06d}Z"


# -- generation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    user_id: str
    country: str
    rng_seed: str


def _plan(user_id: str, seed: int, weights: tuple[list[str], list[float]]) -> _Plan:
    rng = random.Random(f"{seed}:{user_id}:country")
    country = rng.choices(weights[0], weights[1])[0]
    return _Plan(user_id=user_id, country=country, rng_seed=f"{seed}:{user_id}")


class _Dice:
    """Draws from one seeded ``Random`` by arithmetic on ``random()``.

    ``randrange``/``choice``/``choices`` cost about a microsecond each; a million records need
    tens of millions of draws.
    """

    __slots__ = ("rng", "uniform")

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)
        self.uniform = self.rng.random

    def below(self, n: int) -> int:
        return int(self.uniform() * n)

    def between(self, low: int, high: int) -> int:
        return low + int(self.uniform() * (high - low))

    def pick(self, items: Sequence[_T]) -> _T:
        return items[int(self.uniform() * len(items))]

    def chance(self, probability: float) -> bool:
        return self.uniform() < probability


class _Generator:
    """Yields every user's records in feed order: profile, posts, activity, messages."""

    def __init__(self, plans: list[_Plan], records_per_user: int, end_us: int, seed: int):
        self.plans = plans
        self.counts = split_counts(records_per_user)
        self.end_us = end_us
        self.start_us = end_us - _YEAR_US
        self.population = [p.user_id for p in plans]
        # Texts and details come from seeded pools: composing each one afresh costs ten times
        # more than picking, and thousands of variants are plenty of variety.
        dice = _Dice(f"{seed}:pools")
        self.captions = [_caption(dice) for _ in range(_POOL)]
        self.bodies = [_message(dice) for _ in range(_POOL)]
        self.details = {
            kind: [_activity_detail(dice, kind) for _ in range(_POOL)] for kind in set(_ACTIVITY)
        }

    def records(self) -> Iterator[SeedRecord]:
        for plan in self.plans:
            dice = _Dice(plan.rng_seed)
            yield self._profile(dice, plan)
            yield from self._posts(dice, plan.user_id)
            yield from self._activity(dice, plan.user_id)
            yield from self._messages(dice, plan.user_id)

    def _times(self, dice: _Dice, n: int) -> list[int]:
        start, span, uniform = self.start_us, _YEAR_US, dice.uniform
        return sorted([start + int(uniform() * span) for _ in range(n)])

    def _profile(self, dice: _Dice, plan: _Plan) -> SeedRecord:
        first, last = dice.pick(_FIRST_NAMES), dice.pick(_LAST_NAMES)
        username = f"{first.lower()}{dice.pick(('', '.', '_'))}{last.lower()}"
        if dice.chance(0.6):
            username += str(dice.between(1, 10_000))
        birth = None
        if dice.chance(0.85):
            birth = (date(1960, 1, 1) + timedelta(days=dice.below(50 * 365))).isoformat()
        updated = format_micros(dice.between(self.start_us, self.end_us))
        data: Data = {
            "user_id": plan.user_id,
            "username": _ascii_fold(username)[:64],
            "display_name": f"{first} {last}",
            "bio": _bio(dice),
            "avatar_url": None
            if dice.chance(0.2)
            else f"https://cdn.example.net/avatars/{plan.user_id}.jpg",
            "birth_date": birth,
            "language": _LANGUAGES.get(plan.country, "en"),
            "follower_count": int(dice.rng.lognormvariate(5, 2)),
            "following_count": min(7500, int(dice.rng.lognormvariate(5, 1.2))),
            "updated_at": updated,
        }
        return (plan.user_id, Category.PROFILE, plan.user_id, updated, data)

    def _posts(self, dice: _Dice, user_id: str) -> Iterator[SeedRecord]:
        last_us = self.end_us - 1
        for index, created_us in enumerate(self._times(dice, self.counts[Category.POSTS]), 1):
            post_id = f"{user_id}-p{index:07d}"
            caption, hashtags = dice.pick(self.captions)
            width, height = dice.pick(_VIDEO_SIZES)
            updated_us = created_us
            if dice.chance(0.3):
                updated_us = min(last_us, created_us + dice.between(60, 864_000) * 1_000_000)
            updated = format_micros(updated_us)
            data: Data = {
                "id": post_id,
                "caption": caption,
                "hashtags": hashtags,
                "video": {
                    "url": f"https://cdn.example.net/v/{post_id}.mp4",
                    "duration_ms": dice.between(3_000, 180_000),
                    "width": width,
                    "height": height,
                },
                "privacy": dice.pick(_PRIVACY),
                "like_count": int(1 / (1.0 - dice.uniform()) ** (1 / 1.2)) - 1,
                "created_at": format_micros(created_us),
                "updated_at": updated,
            }
            yield (user_id, Category.POSTS, post_id, updated, data)

    def _activity(self, dice: _Dice, user_id: str) -> Iterator[SeedRecord]:
        population, pick, chance = self.population, dice.pick, dice.chance
        for index, at_us in enumerate(self._times(dice, self.counts[Category.ACTIVITY]), 1):
            activity_id = f"{user_id}-a{index:07d}"
            kind = pick(_ACTIVITY)
            target: str | None = None
            if kind == "watch" or kind == "like":
                owner = pick(population) if chance(0.5) else _outsider(dice)
                target = f"{owner}-p{dice.between(1, 2000):07d}"
            elif kind == "follow":
                target = pick(population) if chance(0.5) else _outsider(dice)
            at = format_micros(at_us)
            data: Data = {
                "id": activity_id,
                "kind": kind,
                "target": target,
                "detail": pick(self.details[kind]),
                "occurred_at": at,
            }
            yield (user_id, Category.ACTIVITY, activity_id, at, data)

    def _messages(self, dice: _Dice, user_id: str) -> Iterator[SeedRecord]:
        count = self.counts[Category.DIRECT_MESSAGES]
        if count == 0:
            return
        others = [u for u in self.population if u != user_id]
        peers: list[str] = []
        for _ in range(max(1, min(40, count // 15))):
            peer = dice.pick(others) if others and dice.chance(0.6) else _outsider(dice)
            if peer not in peers:
                peers.append(peer)
        # A few close friends get most messages: rank r is picked with weight 1/r.
        ranked = tuple(p for rank, p in enumerate(peers, 1) for _ in range(max(1, 12 // rank)))
        conversations = {p: "c-{}-{}".format(*sorted((user_id, p))) for p in peers}
        last_us = self.end_us - 1
        for index, sent_us in enumerate(self._times(dice, count), 1):
            message_id = f"{user_id}-m{index:07d}"
            peer = dice.pick(ranked)
            changed = sent = format_micros(sent_us)
            edited = None
            if dice.chance(0.03):
                edited = changed = format_micros(
                    min(last_us, sent_us + dice.between(5, 900) * 1_000_000)
                )
            data: Data = {
                "id": message_id,
                "conversation_id": conversations[peer],
                "peer_user_id": peer,
                "sender_id": user_id if dice.chance(0.5) else peer,
                "body": dice.pick(self.bodies),
                "sent_at": sent,
                "edited_at": edited,
            }
            yield (user_id, Category.DIRECT_MESSAGES, message_id, changed, data)


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


# -- vocabulary ------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _weighted(weights: Mapping[str, int]) -> tuple[str, ...]:
    """A tuple in which each item appears ``weight`` times: a uniform pick is a weighted one."""
    return tuple(item for item, weight in weights.items() for _ in range(weight))


_FIRST_NAMES = _words(
    "Anna Lukas Sofia Mateo Emma Noah Julia Elias Lea Jonas Marie Luca Chiara Leon Sara Hugo "
    "Camille Louis Inès Jakub Zuzana Ana João Matteo Giulia Ingrid Lars Aoife Seán Eleni "
    "Giorgos Zsófia Bence Ioana Andrei Kristýna Mikael Aino Jānis Rūta Maja Filip Nora Oskar "
    "Léa Chloé Björn Élodie Paweł Agnieszka Dimitra Nikos Laura Marco Pablo Lucía Olivia Liam"
)
_LAST_NAMES = _words(
    "Müller Schmidt Rossi Russo García Martínez Dubois Laurent Kowalski Nowak Jansen de-Vries "
    "Peeters Silva Santos Novák Horváth Nagy Popescu Ionescu Andersson Johansson Nielsen "
    "Virtanen Murphy Kelly Papadopoulos Georgiou Kovačić Bērziņš Kazlauskas Tamm Borg Weber "
    "Fischer Moreau Bianchi Romano López Wagner Becker Hansen Berg Lindqvist O'Brien"
)
_LANGUAGES = {
    "DE": "de", "AT": "de", "LI": "de", "CH": "de", "FR": "fr", "BE": "fr", "LU": "fr",
    "IT": "it", "ES": "es", "PT": "pt", "BR": "pt", "PL": "pl", "NL": "nl", "RO": "ro",
    "SE": "sv", "CZ": "cs", "GR": "el", "CY": "el", "HU": "hu", "DK": "da", "FI": "fi",
    "IE": "en", "NO": "nb", "SK": "sk", "BG": "bg", "HR": "hr", "LT": "lt", "SI": "sl",
    "LV": "lv", "EE": "et", "MT": "mt", "IS": "is", "TR": "tr",
}  # fmt: skip
_WORDS = _words(
    "today finally tried the new recipe with my best friend sunset over the city weekend vibes "
    "trying this trend again can't believe how fast this year went morning run by the river "
    "guess what happened next tutorial part two behind the scenes of our little studio "
    "first time skiing in the mountains rainy day playlist coffee and code my cat judging me "
    "road trip across the coast tiny apartment tour learning to dance street food market"
)
_TAGS = _words(
    "fyp foryou travel food recipe dance comedy music art diy fitness running skiing cats "
    "dogs coffee coding study booktok fashion style sunset nature football gaming tutorial "
    "berlin paris roma madrid warszawa amsterdam lisboa wien summer winter vlog"
)
_EMOJI = ("😂", "🔥", "✨", "❤️", "🙌", "😍", "🎶", "🌍", "☕", "🐱")
_BIOS = (
    "{w} and {w}. Based in {c}.",
    "Just here for the {t} videos",
    "{t} | {t} | {t}",
    "Making {t} content since 2019 {e}",
    "",
    "DM for collabs. {e}",
    "Student, {t} lover, occasional {t}.",
)
_CITIES = ("Berlin", "Paris", "Roma", "Madrid", "Warszawa", "Amsterdam", "Lisboa", "Wien", "Oslo")
_PHRASES = (
    "haha yes", "did you see this?", "omg 😂", "on my way", "can't tonight, tomorrow?",
    "that video was so good", "sending you the link", "ok", "👍", "where are you?",
    "happy birthday!! 🎉", "let me know when you're free", "lol", "I'll call you later",
    "this is literally us", "no way", "see you at 8", "thanks!", "did you finish it?",
    "it's raining again here", "what's the name of that song?",
)  # fmt: skip
_VIDEO_SIZES = ((1080, 1920), (720, 1280), (1080, 1080), (1920, 1080), (2160, 3840))
_PRIVACY = _weighted({"public": 80, "friends": 15, "private": 5})
_ACTIVITY = _weighted({"watch": 45, "like": 30, "search": 12, "login": 8, "follow": 5})
_SOURCES = ("for_you", "following", "search", "profile", "share")
_FOLLOW_SOURCES = ("suggested", "profile", "search", "contacts")
_LOGIN_METHODS = ("password", "passkey", "sso")
_DEVICES = ("iPhone 15", "Pixel 8", "Galaxy S23", "iPad Air", "web/Firefox", "web/Chrome")
_FOLD = str.maketrans({"ß": "ss", "ø": "o", "ł": "l", "đ": "d", "æ": "ae", "'": ""})


def _ascii_fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return folded.encode("ascii", "ignore").decode().replace("-", "_")


def _bio(dice: _Dice) -> str:
    template = dice.pick(_BIOS)
    while "{" in template:
        template = (
            template.replace("{w}", dice.pick(_WORDS), 1)
            .replace("{t}", dice.pick(_TAGS), 1)
            .replace("{c}", dice.pick(_CITIES), 1)
            .replace("{e}", dice.pick(_EMOJI), 1)
        )
    return template


def _caption(dice: _Dice) -> tuple[str, list[str]]:
    pick = dice.pick
    words = " ".join([pick(_WORDS) for _ in range(dice.between(3, 14))]).capitalize()
    tags = list(dict.fromkeys([pick(_TAGS) for _ in range(dice.below(6))]))
    if dice.chance(0.5):
        words += " " + pick(_EMOJI)
    if tags:
        words += " #" + " #".join(tags)
    return words, tags


def _message(dice: _Dice) -> str:
    if dice.chance(0.7):
        return dice.pick(_PHRASES)
    return " ".join([dice.pick(_WORDS) for _ in range(dice.between(2, 16))]).capitalize()


def _outsider(dice: _Dice) -> str:
    """A user id outside the seeded population (someone the user follows or talks to)."""
    return f"x{dice.between(1, 10_000_000):07d}"


def _activity_detail(dice: _Dice, kind: str) -> Data:
    pick = dice.pick
    if kind == "watch":
        duration = dice.between(3_000, 180_000)
        watched = min(duration, int(duration * dice.uniform() * 1.3))
        return {"watched_ms": watched, "completed": watched == duration, "source": pick(_SOURCES)}
    if kind == "like":
        return {"source": pick(_SOURCES)}
    if kind == "follow":
        return {"source": pick(_FOLLOW_SOURCES)}
    if kind == "search":
        query = " ".join([pick(_TAGS) for _ in range(dice.between(1, 4))])
        return {"query": query, "results": dice.below(500)}
    return {
        "device": pick(_DEVICES),
        "ip": f"203.0.113.{dice.between(1, 255)}",
        "app_version": f"3{dice.below(10)}.{dice.below(20)}.{dice.below(5)}",
        "method": pick(_LOGIN_METHODS),
    }
