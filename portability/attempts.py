"""A run's attempt history: when each attempt started, how it ended and why.

Support needs every attempt of a failed run, not only the last error: "timed out twice, then
access denied" tells a different story from "access denied". The history is kept in the run's
own row (``runs.attempt_log``), as JSON lines appended by the statements that already move
the run, so it costs no extra query and leaves with the run when history is deleted:

* the claim appends ``{"start": ..., "worker": ...}``;
* leaving ``running`` (retry, success, failure, cancel) appends ``{"end": ..., "outcome": ...}``.

An attempt whose start is followed by another start, with no end between them, ended without
a record: its worker died, was killed or lost its lease, and the run was taken over.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

__all__ = ["Attempt", "end_line", "parse_attempts", "start_line"]

#: Longest error or diagnostic text kept per attempt (the run keeps the last one whole).
_TEXT_LIMIT = 500
#: What an attempt without an end record became, in plain words.
NO_END_RECORDED = (
    "ended without a record: the worker died, was killed or lost its lease, "
    "and the run was taken over"
)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a run, as the history tells it."""

    number: int
    started_at: str
    worker: str | None
    ended_at: str | None = None
    #: ``succeeded``, ``failed``, ``cancelled``, ``queued`` (will retry), ``lapsed`` (no end
    #: was recorded before the next attempt) or None (still running).
    outcome: str | None = None
    reason: str | None = None
    error: str | None = None
    #: Raw diagnostic: staff only.
    detail: str | None = None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= _TEXT_LIMIT:
        return text
    return text[: _TEXT_LIMIT - 1] + "…"


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def start_line(started_at: datetime) -> str:
    """The line the claim appends: this process starts an attempt."""
    return orjson.dumps({"start": _iso(started_at), "worker": _worker()}).decode() + "\n"


def end_line(
    ended_at: datetime,
    outcome: str,
    *,
    reason: str | None = None,
    error: str | None = None,
    detail: str | None = None,
) -> str:
    """The line a move out of ``running`` appends: how the attempt ended."""
    entry = {
        "end": _iso(ended_at),
        "outcome": outcome,
        "reason": reason,
        "error": _clip(error),
        "detail": _clip(detail),
    }
    return orjson.dumps(entry).decode() + "\n"


def parse_attempts(log: str | None) -> list[Attempt]:
    """The attempts a history records, oldest first.

    An end line with no open attempt (a cancel of a queued run) is ignored; a line that does
    not parse is skipped rather than hiding the rest of the history."""
    attempts: list[Attempt] = []
    open_attempt: Attempt | None = None
    for line in (log or "").splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(entry, dict):
            continue
        if "start" in entry:
            if open_attempt is not None:
                attempts.append(replace(open_attempt, outcome="lapsed", error=NO_END_RECORDED))
            open_attempt = Attempt(
                number=len(attempts) + 1,
                started_at=str(entry["start"]),
                worker=_text(entry.get("worker")),
            )
        elif "end" in entry and open_attempt is not None:
            attempts.append(
                replace(
                    open_attempt,
                    ended_at=str(entry["end"]),
                    outcome=str(entry.get("outcome")),
                    reason=_text(entry.get("reason")),
                    error=_text(entry.get("error")),
                    detail=_text(entry.get("detail")),
                )
            )
            open_attempt = None
    if open_attempt is not None:
        attempts.append(open_attempt)
    return attempts


def _text(value: object) -> str | None:
    return None if value is None else str(value)
