"""What the scheduler needs from a process: settings and the database, nothing else.

``portability.runtime.Runtime`` satisfies ``SchedulerRuntime``; a process that only schedules
(``portability scheduler run``) builds the lighter ``DatabaseRuntime``, which opens no source,
destination or credential key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from portability.db.engine import make_engine, make_session_factory
from portability.settings import Settings

__all__ = ["DatabaseRuntime", "SchedulerRuntime"]


class SchedulerRuntime(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...


@dataclass
class DatabaseRuntime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseRuntime:
        engine = make_engine(settings)
        return cls(settings=settings, engine=engine, sessions=make_session_factory(engine))

    def close(self) -> None:
        self.engine.dispose()
