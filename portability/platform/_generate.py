"""The seeder's record generator: every user's records, in feed order, from their own dice.

``plan_user`` fixes a user's country and random seed; ``Generator.records`` yields the profile,
posts, activity and direct messages of each planned user as ``SeedRecord`` tuples, correct by
construction (the bulk path does not check them). Every draw comes from the user's own ``Dice``
seeded with ``(seed, user id)``, so a user's records never depend on who else is seeded.

No record id, conversation id or URL embeds a user id: exports carry per-app pseudonyms
instead of user ids (``portability.pseudonyms``), and an id built from a user id would leak it
where no pseudonym reaches. They are opaque keyed hashes of ``(seed, user id, ...)`` instead
(``opaque_id``), reproducible in any process.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from portability.categories import Category
from portability.platform._bulk import SeedRecord
from portability.platform._dice import Dice
from portability.platform._vocabulary import (
    ACTIVITY,
    FIRST_NAMES,
    LANGUAGES,
    LAST_NAMES,
    PRIVACY,
    VIDEO_SIZES,
    activity_detail,
    ascii_fold,
    bio,
    caption,
    message,
)
from portability.platform.shapes import Data

__all__ = ["Generator", "Plan", "format_micros", "opaque_id", "plan_user", "split_counts"]

_POOL = 4096
_YEAR_US = 365 * 86_400_000_000
_SHARES = {Category.POSTS: 0.20, Category.DIRECT_MESSAGES: 0.25}


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


def opaque_id(seed: int, text: str) -> str:
    """16 hex digits of BLAKE2b keyed with the seed over ``text``: an id that reveals nothing.

    Costs about 0.7 µs: only posts (whose ids other users' likes name), conversations,
    avatars and each user's token use it; activity and message ids are the user's token and a
    counter.
    """
    return hashlib.blake2b(text.encode(), digest_size=8, key=b"%d" % seed).hexdigest()


@dataclass(frozen=True)
class Plan:
    user_id: str
    country: str
    rng_seed: str


def plan_user(user_id: str, seed: int, weights: tuple[list[str], list[float]]) -> Plan:
    rng = random.Random(f"{seed}:{user_id}:country")
    country = rng.choices(weights[0], weights[1])[0]
    return Plan(user_id=user_id, country=country, rng_seed=f"{seed}:{user_id}")


class Generator:
    """Yields every user's records in feed order: profile, posts, activity, messages."""

    def __init__(self, plans: list[Plan], records_per_user: int, end_us: int, seed: int):
        self.plans = plans
        self.seed = seed
        self.counts = split_counts(records_per_user)
        self.end_us = end_us
        self.start_us = end_us - _YEAR_US
        self.population = [p.user_id for p in plans]
        # Texts and details come from seeded pools: composing each one afresh costs ten times
        # more than picking, and thousands of variants are plenty of variety.
        dice = Dice(f"{seed}:pools")
        self.captions = [caption(dice) for _ in range(_POOL)]
        self.bodies = [message(dice) for _ in range(_POOL)]
        self.details = {
            kind: [activity_detail(dice, kind) for _ in range(_POOL)]
            for kind in dict.fromkeys(ACTIVITY)
        }
        # What likes and watches point at: posts of seeded users (every user has as many
        # posts) and of outsiders.
        posts = max(1, self.counts[Category.POSTS])
        self.targets = [
            self.post_id(
                dice.pick(self.population) if dice.chance(0.5) else _outsider(dice),
                dice.between(1, posts + 1),
            )
            for _ in range(_POOL)
        ]

    def post_id(self, user_id: str, index: int) -> str:
        """The id of ``user_id``'s ``index``-th post (from 1)."""
        return "p" + opaque_id(self.seed, f"{user_id}:p:{index}")

    def records(self) -> Iterator[SeedRecord]:
        for plan in self.plans:
            dice = Dice(plan.rng_seed)
            yield self._profile(dice, plan)
            yield from self._posts(dice, plan.user_id)
            yield from self._activity(dice, plan.user_id)
            yield from self._messages(dice, plan.user_id)

    def _times(self, dice: Dice, n: int) -> list[int]:
        start, span, uniform = self.start_us, _YEAR_US, dice.uniform
        return sorted([start + int(uniform() * span) for _ in range(n)])

    def _profile(self, dice: Dice, plan: Plan) -> SeedRecord:
        first, last = dice.pick(FIRST_NAMES), dice.pick(LAST_NAMES)
        username = f"{first.lower()}{dice.pick(('', '.', '_'))}{last.lower()}"
        if dice.chance(0.6):
            username += str(dice.between(1, 10_000))
        birth = None
        if dice.chance(0.85):
            birth = (date(1960, 1, 1) + timedelta(days=dice.below(50 * 365))).isoformat()
        updated = format_micros(dice.between(self.start_us, self.end_us))
        avatar = opaque_id(self.seed, f"{plan.user_id}:avatar")
        data: Data = {
            "user_id": plan.user_id,
            "username": ascii_fold(username)[:64],
            "display_name": f"{first} {last}",
            "bio": bio(dice),
            "avatar_url": None
            if dice.chance(0.2)
            else f"https://cdn.example.net/avatars/{avatar}.jpg",
            "birth_date": birth,
            "language": LANGUAGES.get(plan.country, "en"),
            "follower_count": int(dice.rng.lognormvariate(5, 2)),
            "following_count": min(7500, int(dice.rng.lognormvariate(5, 1.2))),
            "updated_at": updated,
        }
        return (plan.user_id, Category.PROFILE, plan.user_id, updated, data)

    def _posts(self, dice: Dice, user_id: str) -> Iterator[SeedRecord]:
        last_us = self.end_us - 1
        for index, created_us in enumerate(self._times(dice, self.counts[Category.POSTS]), 1):
            post_id = self.post_id(user_id, index)
            caption, hashtags = dice.pick(self.captions)
            width, height = dice.pick(VIDEO_SIZES)
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
                "privacy": dice.pick(PRIVACY),
                "like_count": int(1 / (1.0 - dice.uniform()) ** (1 / 1.2)) - 1,
                "created_at": format_micros(created_us),
                "updated_at": updated,
            }
            yield (user_id, Category.POSTS, post_id, updated, data)

    def _activity(self, dice: Dice, user_id: str) -> Iterator[SeedRecord]:
        population, targets, pick, chance = self.population, self.targets, dice.pick, dice.chance
        token = opaque_id(self.seed, f"{user_id}:a")
        for index, at_us in enumerate(self._times(dice, self.counts[Category.ACTIVITY]), 1):
            activity_id = f"a{token}{index:07d}"
            kind = pick(ACTIVITY)
            target: str | None = None
            if kind == "watch" or kind == "like":
                target = pick(targets)
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

    def _messages(self, dice: Dice, user_id: str) -> Iterator[SeedRecord]:
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
        conversations = {
            p: "c" + opaque_id(self.seed, "{}:{}:c".format(*sorted((user_id, p)))) for p in peers
        }
        token = opaque_id(self.seed, f"{user_id}:m")
        last_us = self.end_us - 1
        for index, sent_us in enumerate(self._times(dice, count), 1):
            message_id = f"m{token}{index:07d}"
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


def _outsider(dice: Dice) -> str:
    """A user id outside the seeded population (someone the user follows or talks to)."""
    return f"x{dice.between(1, 10_000_000):07d}"
