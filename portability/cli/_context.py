"""Building settings and the runtime for a command, once, at the edge."""

from __future__ import annotations

from portability.runtime import Runtime
from portability.settings import Settings


def load_settings() -> Settings:
    return Settings()


def load_runtime() -> Runtime:
    return Runtime.from_settings(load_settings())
