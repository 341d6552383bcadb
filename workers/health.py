"""Broker and worker health for ``portability doctor``, without the caller knowing Celery."""

from __future__ import annotations

from kombu.connection import Connection
from kombu.utils.url import maybe_sanitize_url

from portability.errors import BrokerUnavailableError
from portability.settings import Settings
from workers.app import create_app

__all__ = ["check_broker", "ping_workers"]


def check_broker(settings: Settings, *, timeout: float = 2.0) -> None:
    """Connect to the broker once; ``BrokerUnavailableError`` naming it if that fails."""
    url = settings.resolved_broker_url
    if url.startswith("filesystem"):
        create_app(settings)  # creates the queue folders; nothing to connect to
        return
    try:
        with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call,unused-ignore]
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise BrokerUnavailableError(
            f"the broker at {maybe_sanitize_url(url)} cannot be reached ({exc}): check "
            "PORTABILITY_BROKER_URL and that the server is running"
        ) from exc


def ping_workers(settings: Settings, *, timeout: float = 1.0) -> list[str]:
    """Names of the workers answering a Celery ping within ``timeout`` seconds."""
    replies = create_app(settings).control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)
