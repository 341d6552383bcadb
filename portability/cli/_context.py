"""What a command needs, built once at the edge: settings, sessions, the broker, the actor.

``STATE`` lives for one invocation of ``portability.cli.run``: the root callback fills in
``--debug`` and ``--actor``; the first command that needs the database builds the engine, and
``close`` disposes of it at the end.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field

from pydantic import ValidationError as SettingsValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from portability.dispatch import EnqueueRuns
from portability.errors import PortabilityError
from portability.runtime import Runtime
from portability.settings import Settings

__all__ = ["STATE", "enqueuer", "load_runtime", "load_settings", "sessions"]


@dataclass
class _State:
    debug: bool = False
    actor: str | None = None
    settings: Settings | None = None
    engine: Engine | None = field(default=None, repr=False)

    @property
    def database_url(self) -> str | None:
        return self.settings.resolved_database_url if self.settings is not None else None

    def who(self) -> str:
        """``--actor``, else the OS user: recorded on every state-changing command."""
        if self.actor:
            return self.actor
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return f"uid:{os.getuid()}"

    def reset(self) -> None:
        self.close()
        self.debug, self.actor, self.settings = False, None, None

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


STATE = _State()


def load_settings() -> Settings:
    """Settings from ``PORTABILITY_*``; a bad value is one line naming the variable."""
    if STATE.settings is None:
        try:
            STATE.settings = Settings()
        except SettingsValidationError as exc:
            first = exc.errors()[0]
            name = "PORTABILITY_" + str(first["loc"][0]).upper() if first["loc"] else "a setting"
            raise PortabilityError(f"{name} is invalid: {first['msg']}") from None
    return STATE.settings


def engine() -> Engine:
    if STATE.engine is None:
        from portability.db.engine import make_engine

        STATE.engine = make_engine(load_settings())
    return STATE.engine


def sessions() -> sessionmaker[Session]:
    from portability.db.engine import make_session_factory

    return make_session_factory(engine())


def load_runtime() -> Runtime:
    """The full runtime (source, destinations, credential box) for commands that export or
    test a destination."""
    return Runtime.from_settings(load_settings())


def enqueuer() -> EnqueueRuns:
    """The broker, through the workers' public ``celery_enqueue`` (imported at this edge); each
    run goes to its app's export queue (looked up on this command's engine)."""
    from workers import celery_enqueue

    return celery_enqueue(load_settings(), engine())
