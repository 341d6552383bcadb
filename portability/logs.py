"""Logging, configured once at each process edge: JSON lines in production, text on a terminal.

``configure(fmt)`` is called by the worker, beat, the scheduler loop and long-running CLI
commands; ``fmt`` is ``json``, ``text`` or ``auto`` (text when stderr is a terminal). The
standard library only: every module keeps its ``logging.getLogger(__name__)``.

Identifiers travel in context variables: ``bound(run_id=..., category=...)`` around a run's
steps, and every line logged inside (from any module, in that thread) carries them. A thread
starts with an empty context, so the engine binds again in each stream thread.

What a line may say: ids, counts, statuses, error messages written by us. Never a credential
(settings hold them as ``SecretStr``; destinations never put them in messages) and never a
record's content (the engine logs counts, not lines).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

import orjson

__all__ = ["IDS", "JsonFormatter", "bound", "configure", "current_ids"]

#: The identifiers a line may carry, in the order text lines show them.
IDS = ("run_id", "app_id", "authorization_id", "destination_id", "category", "schedule_id")

_NO_IDS: Mapping[str, object] = MappingProxyType({})
_IDS: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "portability_log_ids", default=_NO_IDS
)
#: Loggers whose INFO lines are noise or say the wrong thing: Celery's "Task … succeeded in
#: 1.7s: 'failed'" (the worker logs its own line naming the run), botocore's retries.
_QUIET = {"celery.app.trace": logging.WARNING, "botocore": logging.WARNING}


def current_ids() -> dict[str, object]:
    return dict(_IDS.get())


@contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Add ``ids`` to every line logged in this context (None values are left out)."""
    token = _IDS.set({**_IDS.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _IDS.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.portability_ids = _IDS.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound ids, and the
    exception (type and message; the traceback only at DEBUG, see ``configure``)."""

    def __init__(self, *, tracebacks: bool = True) -> None:
        super().__init__()
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "portability_ids", None) or _IDS.get())
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error"] = f"{type(exc).__name__}: {exc}"
            if self._tracebacks:
                line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(ids)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = getattr(record, "portability_ids", None) or _IDS.get()
        shown = " ".join(f"{k}={ids[k]}" for k in IDS if k in ids)
        record.ids = f" [{shown}]" if shown else ""
        return super().format(record)


def configure(
    fmt: str = "auto",
    level: str | int = "INFO",
    *,
    tracebacks: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Send every logger's lines to ``stream`` (stderr) in ``fmt``; replaces handlers set
    before (Celery's). Idempotent: a second call reconfigures instead of doubling lines.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    if fmt not in {"json", "text"}:
        raise ValueError(f"log format must be json, text or auto, not {fmt!r}")
    handler = logging.StreamHandler(stream)
    formatter = JsonFormatter(tracebacks=tracebacks) if fmt == "json" else _TextFormatter()
    handler.setFormatter(formatter)
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
