"""Options shared by several commands, parsed at the edge into plain values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import typer

from portability.db.base import MAX_ID

__all__ = ["JSON", "LIMIT", "PAGE", "id_argument", "parse_duration", "parse_since", "since_option"]

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(value: str) -> timedelta | None:
    match = _DURATION.match(value.strip().lower())
    if not match:
        return None
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    return timedelta(**{unit: amount})


def parse_duration(value: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` or ``2w`` as a ``timedelta``; a usage error otherwise."""
    duration = _duration(value)
    if duration is None:
        raise typer.BadParameter(f"{value!r} is not a duration (30m, 24h, 7d, 2w)")
    return duration


def parse_since(value: str | None) -> datetime | None:
    """``24h``, ``30m``, ``7d``, ``2w`` ago, or an ISO date/time (UTC unless it says)."""
    if value is None:
        return None
    duration = _duration(value)
    if duration is not None:
        return datetime.now(UTC) - duration
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (30m, 24h, 7d, 2w) nor an ISO date"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _since_callback(value: str | None) -> str | None:
    parse_since(value)  # a usage error now, not after the database was opened
    return value


def since_option() -> str | None:
    return typer.Option(  # type: ignore[no-any-return]
        None,
        "--since",
        help="Only what was queued since then: 30m, 24h, 7d, 2w or an ISO date.",
        callback=_since_callback,
    )


def id_argument(what: str) -> int:
    return typer.Argument(  # type: ignore[no-any-return]
        ...,
        help=f"The {what} id.",
        min=1,
        max=MAX_ID,
        show_default=False,
        metavar=what.upper(),
    )


JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")
LIMIT = typer.Option(20, "--limit", min=1, max=1000, help="Rows per page.")
PAGE = typer.Option(1, "--page", min=1, help="Page number, newest first.")
