"""Liveness from heartbeat files: no broker round trip, no database query.

A worker's main process touches ``worker.heartbeat`` from its event loop's timer (a stuck
loop stops touching it); beat and the scheduler loop touch ``scheduler.heartbeat`` after each
tick, whether the tick succeeded or not (a database outage is an alert of its own, not a
reason to restart the scheduler). ``portability health worker --max-age 60`` exits 1 when the
file is older than that: compose's health checks run it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Heartbeat", "HeartbeatAge", "heartbeat_age"]

WORKER = "worker"
SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Heartbeat:
    """The heartbeat file of one kind of process (``worker`` or ``scheduler``)."""

    folder: Path
    kind: str

    @property
    def path(self) -> Path:
        return self.folder / f"{self.kind}.heartbeat"

    def touch(self) -> None:
        """Set the file's time to now (created on first use)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        os.utime(self.path)


@dataclass(frozen=True)
class HeartbeatAge:
    seconds: float | None

    def is_fresh(self, max_age: float) -> bool:
        return self.seconds is not None and self.seconds <= max_age

    def describe(self) -> str:
        if self.seconds is None:
            return "no heartbeat yet"
        return f"last heartbeat {self.seconds:.1f}s ago"


def heartbeat_age(heartbeat: Heartbeat, now: float | None = None) -> HeartbeatAge:
    try:
        mtime = heartbeat.path.stat().st_mtime
    except FileNotFoundError:
        return HeartbeatAge(None)
    return HeartbeatAge(max(0.0, (now if now is not None else time.time()) - mtime))
