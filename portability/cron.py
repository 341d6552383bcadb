"""Cron arithmetic: when does a five-field expression fire, in an IANA zone, as UTC instants.

Expressions are read on the *wall clock* of the schedule's zone, then mapped to UTC, so a
daylight-saving transition neither skips nor doubles a day's run:

- spring forward: a wall time the clock jumps over (02:30 in Europe/Berlin on the last Sunday
  of March) fires once, at the first valid instant after the jump (03:00 CEST);
- fall back: a wall time the clock shows twice (02:30 on the last Sunday of October) fires
  once, at its first occurrence (02:30 CEST), never again at 02:30 CET.

Several wall times that land on the same instant (every time inside a skipped hour) fire once.
A job whose hour field is a wildcard therefore has one longer gap on each transition day:
``0 * * * *`` fires at 02:00 CEST and next at 03:00 CET on the fall-back day.

Pure functions over plain values (no database): the scheduler and the registry call them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice, pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from portability.errors import ValidationError

__all__ = [
    "PRESETS",
    "check_min_interval",
    "closest_interval",
    "expand",
    "iter_fires",
    "next_fire_after",
    "normalize_cron",
    "zone",
]

#: Readable presets, stored as written and expanded when computed.
PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_FIELDS = "minute hour day-of-month month day-of-week"
#: croniter's non-standard hashed (``H``) and random (``R``) items: not deterministic per run.
_NON_STANDARD = re.compile(r"^[HR](\(|/|$)", re.IGNORECASE)
#: Where the "does it ever fire" check starts: a fixed instant keeps validation deterministic.
_REFERENCE = datetime(2000, 1, 1)  # a wall-clock value: no zone on purpose
#: Wall times skipped in a row before ``iter_fires`` gives up (only reachable on a bug).
_MAX_SKIPS = 10_000


def _cron_error(message: str) -> ValidationError:
    """A refused cron expression: the API names ``cron`` as the field at fault."""
    return ValidationError(message, field="cron")


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValidationError`` for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'",
            field="timezone",
        ) from None


def expand(expression: str) -> str:
    """The five fields behind a preset; other expressions unchanged."""
    return PRESETS.get(expression, expression)


def normalize_cron(expression: str) -> str:
    """The stored form of a cron expression, or ``ValidationError`` saying what is wrong.

    Accepts five fields (``minute hour day-of-month month day-of-week``) or a preset
    (``@daily``...). Refuses a seconds or year field, croniter's random/hashed items, syntax
    errors and expressions that never fire (``0 0 30 2 *``).
    """
    text = " ".join(str(expression).split())
    if not text:
        raise _cron_error(f"cron expression is empty: give five fields ({_FIELDS})")
    if text.startswith("@"):
        preset = text.lower()
        if preset not in PRESETS:
            raise _cron_error(f"unknown cron preset {text!r}: use one of {', '.join(PRESETS)}")
        return preset
    fields = text.split(" ")
    if len(fields) == 6:
        raise _cron_error(
            f"cron expression {text!r} has 6 fields: seconds (or year) are not supported; "
            f"give five fields ({_FIELDS})"
        )
    if len(fields) != 5:
        raise _cron_error(
            f"cron expression {text!r} has {len(fields)} fields: give five ({_FIELDS})"
        )
    for field in fields:
        if any(_NON_STANDARD.match(item) for item in field.split(",")):
            raise _cron_error(
                f"cron expression {text!r}: {field!r} is a random or hashed field; "
                "use explicit values"
            )
    try:
        croniter(text, _REFERENCE).get_next(datetime)
    except CroniterBadDateError:
        raise _cron_error(
            f"cron expression {text!r} never fires: no calendar date matches it "
            "(such as the 30th of February)"
        ) from None
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        raise _cron_error(f"cron expression {text!r} is not valid: {exc}") from None
    return text


def iter_fires(expression: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The expression's fire instants strictly after ``after``, ascending, as aware UTC.

    ``after`` must be aware. See the module docstring for the daylight-saving rules.
    """
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    tz = zone(timezone)
    start = after.astimezone(tz).replace(tzinfo=None)
    walls = croniter(expand(expression), start)
    last = after.astimezone(UTC)
    skipped = 0
    while True:
        instant = _wall_to_utc(walls.get_next(datetime), tz)
        if instant > last:
            skipped = 0
            last = instant
            yield instant
            continue
        skipped += 1
        if skipped > _MAX_SKIPS:  # pragma: no cover - would mean a bug in the mapping
            raise RuntimeError(f"cron {expression!r} in {timezone} stopped advancing at {last}")


def next_fire_after(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire instant strictly after ``after`` (aware UTC)."""
    return next(iter_fires(expression, timezone, after))


def check_min_interval(expression: str, timezone: str, minutes: int) -> None:
    """Refuse an expression that can fire twice within ``minutes`` (``ValidationError``).

    The closest pair of fires is measured on the wall clock and, for zones with daylight
    saving, in real time across the coming year's transitions.
    """
    closest = closest_interval(normalize_cron(expression), timezone)
    if closest < timedelta(minutes=minutes):
        raise _cron_error(
            f"cron expression {expression!r} in {timezone} fires {_describe(closest)} apart at "
            f"its closest; the minimum interval between runs is {minutes} minutes"
        )


def closest_interval(expression: str, timezone: str, *, now: datetime | None = None) -> timedelta:
    """The shortest time between two consecutive fires of a valid expression.

    On the wall clock the closest pair follows from the minute and hour fields (and whether
    two consecutive days fire). Real time departs from it only at an offset change, where the
    fires either side of the jump come closer (``50 1`` and ``0 3`` are 10 minutes apart when
    02:00 becomes 03:00): those pairs are measured at the coming year's transitions.
    """
    tz = zone(timezone)
    expanded = expand(expression)
    closest = _closest_wall_gap(expanded)
    for transition in _transitions(tz, now or datetime.now(UTC)):
        before = (transition - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None)
        last_wall = croniter(expanded, before + timedelta(seconds=1)).get_prev(datetime)
        start = _wall_to_utc(last_wall, tz) - timedelta(microseconds=1)
        fires = list(islice(iter_fires(expression, timezone, start), 4))
        closest = min([closest, *(b - a for a, b in pairwise(fires))])
    return closest


def _wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive wall time means in ``tz``: its first occurrence, or, for a wall
    time the clock skips, the first valid instant after the jump."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = sorted((instant, other))
    # Binary search in whole seconds for the first instant whose wall time reaches ``wall``.
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if (low + timedelta(seconds=mid)).astimezone(tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid + 1
    return low + timedelta(seconds=lo)


@lru_cache(maxsize=1024)
def _closest_wall_gap(expression: str) -> timedelta:
    """Shortest gap on the wall clock: within a day, and from a day's last fire to the next
    firing day's first (only when two consecutive days fire)."""
    minutes_field, hours_field = croniter(expression).expanded[:2]
    minutes = range(60) if minutes_field == ["*"] else [int(m) for m in minutes_field]
    hours = range(24) if hours_field == ["*"] else [int(h) for h in hours_field]
    times = sorted(h * 60 + m for h in hours for m in minutes)
    within = min((b - a for a, b in pairwise(times)), default=None)
    day_gap = _closest_day_gap(expression)
    across = day_gap * 1440 - times[-1] + times[0]
    return timedelta(minutes=across if within is None else min(within, across))


def _closest_day_gap(expression: str) -> int:
    """Fewest days between two firing days (1 when two consecutive days fire)."""
    fields = expression.split(" ")
    days = croniter(" ".join(["0", "0", *fields[2:]]), _REFERENCE)
    previous = days.get_next(datetime)
    closest: int | None = None
    # A year shows every month and weekday pattern; a leap day may need four.
    while closest != 1 and previous.year < _REFERENCE.year + (1 if closest else 4):
        current = days.get_next(datetime)
        gap = (current - previous).days
        closest = gap if closest is None else min(closest, gap)
        previous = current
    return closest or 366 * 4


def _transitions(tz: ZoneInfo, now: datetime) -> list[datetime]:
    """Instants (to the second) where ``tz`` changes its UTC offset within the next year."""
    found = []
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    offset = day.astimezone(tz).utcoffset()
    for _ in range(367):
        following = day + timedelta(days=1)
        current = following.astimezone(tz).utcoffset()
        if current != offset:
            lo, hi = 0, 86_400  # first second of the day with the new offset
            while lo < hi:
                mid = (lo + hi) // 2
                if (day + timedelta(seconds=mid)).astimezone(tz).utcoffset() == offset:
                    lo = mid + 1
                else:
                    hi = mid
            found.append(day + timedelta(seconds=lo))
            offset = current
        day = following
    return found


def _describe(gap: timedelta) -> str:
    minutes = int(gap.total_seconds() // 60)
    if minutes < 1:
        return f"{int(gap.total_seconds())} seconds"
    return f"{minutes} minute" + ("" if minutes == 1 else "s")
