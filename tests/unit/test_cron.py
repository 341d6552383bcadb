"""Cron arithmetic in IANA zones, and the jitter that spreads schedules sharing an instant."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from portability.cron import (
    check_min_interval,
    closest_interval,
    iter_fires,
    next_fire_after,
    normalize_cron,
)
from portability.errors import ValidationError
from portability.timing import JITTER_FRACTION, jitter, planned_run_at

# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0 2 * * *", "0 2 * * *"),
        ("  */15   *  * * 1-5 ", "*/15 * * * 1-5"),
        ("@daily", "@daily"),
        ("@WEEKLY", "@weekly"),
        ("@monthly", "@monthly"),
        ("0 9 * jan,jul mon", "0 9 * jan,jul mon"),
        ("0 0 29 2 *", "0 0 29 2 *"),
    ],
)
def test_valid_expressions_are_stored_normalized(given: str, stored: str) -> None:
    assert normalize_cron(given) == stored


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("0 0 * * * *", "6 fields: seconds"),
        ("*/10 * * * * * 2030", "7 fields"),
        ("* * *", "3 fields"),
        ("", "empty"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("61 * * * *", "not valid"),
        ("0 25 * * *", "not valid"),
        ("H 0 * * *", "random or hashed"),
        ("R 0 * * *", "random or hashed"),
        ("@reboot", "unknown cron preset"),
        ("@fortnightly", "unknown cron preset"),
    ],
)
def test_bad_expressions_are_refused_with_their_reason(expression: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        normalize_cron(expression)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        check_min_interval("@daily", "Mars/Olympus", 15)


@pytest.mark.parametrize(
    ("expression", "timezone", "minutes"),
    [
        ("*/5 * * * *", "UTC", 15),
        ("0,10 * * * *", "UTC", 15),
        ("*/15 * * * *", "UTC", 30),
        ("0 * * * *", "UTC", 120),
        # 01:50 and 03:00 are 70 minutes apart on the wall clock, 10 when 02:00 becomes 03:00.
        ("0,50 1,3 * * *", "Europe/Berlin", 15),
    ],
)
def test_expressions_more_frequent_than_the_minimum_interval_are_refused(
    expression: str, timezone: str, minutes: int
) -> None:
    with pytest.raises(ValidationError, match=f"minimum interval between runs is {minutes}"):
        check_min_interval(expression, timezone, minutes)


@pytest.mark.parametrize(
    ("expression", "timezone"),
    [
        ("*/15 * * * *", "UTC"),
        ("*/15 * * * *", "Australia/Lord_Howe"),
        ("0,50 1,3 * * *", "UTC"),
        ("0,50 0,23 * * 1", "UTC"),  # 23:50 Monday and 00:00 Tuesday never both fire
        ("@daily", "America/New_York"),
    ],
)
def test_expressions_at_or_above_the_minimum_interval_are_accepted(
    expression: str, timezone: str
) -> None:
    check_min_interval(expression, timezone, 15)


def test_closest_interval_measures_the_tightest_pair() -> None:
    assert closest_interval("*/20 8-18 * * *", "UTC") == timedelta(minutes=20)
    assert closest_interval("@weekly", "UTC") == timedelta(days=7)
    # Lord Howe's clocks move 30 minutes: an hourly job has one 30-minute gap a year.
    assert closest_interval("0 * * * *", "Australia/Lord_Howe") == timedelta(minutes=30)


# --- daylight saving ---------------------------------------------------------------------

DST_CASES = [
    # zone, expression, transition date, the wall time it fires at that day (first occurrence)
    pytest.param("Europe/Berlin", "30 2 * * *", date(2024, 3, 31), (3, 0, 0), id="berlin-spring"),
    pytest.param("Europe/Berlin", "30 2 * * *", date(2024, 10, 27), (2, 30, 0), id="berlin-fall"),
    pytest.param("America/New_York", "30 2 * * *", date(2024, 3, 10), (3, 0, 0), id="ny-spring"),
    pytest.param("America/New_York", "30 1 * * *", date(2024, 11, 3), (1, 30, 0), id="ny-fall"),
    pytest.param(
        "Australia/Lord_Howe", "15 2 * * *", date(2024, 10, 6), (2, 30, 0), id="lord-howe-spring"
    ),
    pytest.param(
        "Australia/Lord_Howe", "45 1 * * *", date(2024, 4, 7), (1, 45, 0), id="lord-howe-fall"
    ),
]


@pytest.mark.parametrize(("timezone", "expression", "day", "wall"), DST_CASES)
def test_daily_job_fires_exactly_once_per_day_across_a_transition(
    timezone: str, expression: str, day: date, wall: tuple[int, int, int]
) -> None:
    tz = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz) - timedelta(days=3)
    fires = list(islice(iter_fires(expression, timezone, start), 7))
    local_days = Counter(f.astimezone(tz).date() for f in fires)
    assert local_days == {start.date() + timedelta(days=n): 1 for n in range(7)}

    (on_the_day,) = [f for f in fires if f.astimezone(tz).date() == day]
    expected = datetime(day.year, day.month, day.day, *wall, tzinfo=tz)  # fold=0: first
    assert on_the_day == expected.astimezone(UTC)


def test_time_skipped_by_spring_forward_fires_at_the_first_valid_instant() -> None:
    after = datetime(2024, 3, 31, 0, 0, tzinfo=UTC)  # 01:00 CET, one hour before the jump
    fire = next_fire_after("30 2 * * *", "Europe/Berlin", after)
    assert fire == datetime(2024, 3, 31, 1, 0, tzinfo=UTC)  # 03:00 CEST, the jump itself


def test_repeated_wall_time_on_fall_back_fires_only_at_its_first_occurrence() -> None:
    tz = ZoneInfo("Europe/Berlin")
    first = datetime(2024, 10, 27, 2, 30, tzinfo=tz, fold=0)
    fire = next_fire_after("30 2 * * *", "Europe/Berlin", first - timedelta(minutes=1))
    assert fire == first.astimezone(UTC)
    # Asked again from inside the repeated hour (02:15 CET, the second pass), the next
    # fire is the next day's, not 02:30 CET.
    second_pass = datetime(2024, 10, 27, 2, 15, tzinfo=tz, fold=1)
    nxt = next_fire_after("30 2 * * *", "Europe/Berlin", second_pass)
    assert nxt.astimezone(tz).date() == date(2024, 10, 28)


def test_fires_are_strictly_increasing_through_both_transitions() -> None:
    start = datetime(2024, 3, 30, tzinfo=UTC)
    fires = list(islice(iter_fires("*/15 * * * *", "Europe/Berlin", start), 4 * 24 * 3))
    assert all(a < b for a, b in pairwise(fires))
    fall = datetime(2024, 10, 26, tzinfo=UTC)
    fires = list(islice(iter_fires("0 * * * *", "Europe/Berlin", fall), 72))
    assert all(a < b for a, b in pairwise(fires))


def test_next_fire_requires_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire_after("@daily", "UTC", datetime(2024, 1, 1))


def test_presets_fire_at_their_readable_times() -> None:
    after = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)  # a Wednesday
    assert next_fire_after("@daily", "UTC", after) == datetime(2024, 5, 16, tzinfo=UTC)
    assert next_fire_after("@weekly", "UTC", after) == datetime(2024, 5, 19, tzinfo=UTC)
    assert next_fire_after("@monthly", "UTC", after) == datetime(2024, 6, 1, tzinfo=UTC)


# --- jitter ------------------------------------------------------------------------------


def test_jitter_is_the_same_for_a_schedule_every_time() -> None:
    day = timedelta(days=1)
    assert {jitter(42, day, 900) for _ in range(5)} == {jitter(42, day, 900)}


def test_jitter_is_bounded_by_the_setting_and_by_a_fraction_of_the_interval() -> None:
    daily = [jitter(n, timedelta(days=1), 900) for n in range(1, 2001)]
    assert all(timedelta(0) <= j < timedelta(seconds=900) for j in daily)
    quarter_hour = timedelta(minutes=15)
    frequent = [jitter(n, quarter_hour, 900) for n in range(1, 2001)]
    assert all(j < quarter_hour * JITTER_FRACTION for j in frequent)
    assert {jitter(n, timedelta(days=1), 0) for n in range(1, 100)} == {timedelta(0)}


def test_jitter_spreads_schedules_that_share_an_instant() -> None:
    offsets = [jitter(n, timedelta(days=1), 900).total_seconds() for n in range(1, 10_001)]
    per_minute = Counter(int(seconds // 60) for seconds in offsets)
    assert len(per_minute) == 15  # every minute of the 15-minute window is used
    assert max(per_minute.values()) < 2 * 10_000 / 15  # and none takes a crowd


def test_planned_run_is_the_fire_plus_the_schedules_jitter() -> None:
    after = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)
    planned = planned_run_at(7, "@daily", "UTC", after, max_jitter_seconds=900)
    midnight = datetime(2024, 5, 16, tzinfo=UTC)
    assert planned == midnight + jitter(7, timedelta(days=1), 900)
