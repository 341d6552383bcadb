"""Placeholder replaced by the scheduler work (cron arithmetic)."""

from __future__ import annotations

from croniter import croniter

from portability.errors import ValidationError


def normalize_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    if not croniter.is_valid(expression):
        raise ValidationError(f"cron expression {expression!r} is not valid")
    return expression


def check_min_interval(expression: str, timezone: str, minutes: int) -> None:
    return None
