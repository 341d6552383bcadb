"""Logging for the CLI, configured once per process.

Every command logs warnings as one line to stderr; long-running commands (``scheduler run``,
``runs wait``, ``consume --watch``) raise the level to INFO so what they do is visible.
With ``--debug`` everything is logged, tracebacks included.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "portability-cli"


def configure_logging(*, debug: bool = False, long_running: bool = False) -> None:
    """Install one stderr handler on the root logger (called again: only the level changes).

    WARNING for every command, INFO for ``long_running`` ones, DEBUG with ``--debug``.
    """
    level = logging.INFO if long_running else logging.WARNING
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = _Stderr()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else level)
    for noisy in ("botocore", "boto3", "urllib3", "kombu", "celery", "amqp"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else max(level, logging.WARNING))


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now (a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)
