"""One webhook POST, under the endpoint policy, with a short timeout and no redirects.

The policy is applied when sending, not only at registration, since DNS can change: the URL's
host is resolved and checked before connecting, and the address the socket actually reached is
checked again before a byte of the request is written (which closes the gap between our lookup
and the connection's own). ``http.client`` never follows a redirect: a 3xx is a failed
attempt like any other non-2xx. The receiver's response body is drained (64 KiB at most) and
never stored: it is hostile input.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from portability.errors import EndpointRefusedError
from portability.netpolicy import EndpointPolicy

__all__ = ["PostResult", "post"]

_MAX_DRAIN = 64 * 1024


@dataclass(frozen=True)
class PostResult:
    """``status`` is the HTTP status, or None when no response came (``error`` says why)."""

    status: int | None
    duration_ms: int
    error: str | None = None

    @property
    def is_success(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Guarded:
    """Checks the connected socket's peer against the policy (mixed into http.client's)."""

    policy: EndpointPolicy
    host: str
    sock: Any

    def _check_peer(self) -> None:
        peer = self.sock.getpeername()[0]
        try:
            self.policy.check_address(peer, self.host)
        except EndpointRefusedError:
            self.sock.close()
            raise


class _HTTPConnection(_Guarded, http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self._check_peer()


class _HTTPSConnection(_Guarded, http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self._check_peer()


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, policy: EndpointPolicy
) -> PostResult:
    """POST ``body`` to ``url``. Raises ``EndpointRefusedError`` if the policy refuses it
    (before connecting, or once connected to a refused address); any other failure is a
    ``PostResult`` without a status."""
    started = time.monotonic()
    policy.check_url(url)
    parts = urlsplit(url)
    assert parts.hostname is not None  # check_url refuses a URL without a host
    cls = _HTTPSConnection if parts.scheme == "https" else _HTTPConnection
    connection = cls(parts.hostname, parts.port, timeout=timeout)
    connection.policy = policy
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(_MAX_DRAIN)
        return PostResult(response.status, _ms(started))
    except EndpointRefusedError:
        raise
    except TimeoutError:
        return PostResult(None, _ms(started), f"no response within {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return PostResult(None, _ms(started), _describe(exc))
    finally:
        connection.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, ConnectionError):
        return "the connection was closed or reset"
    if isinstance(exc, http.client.HTTPException):
        return "the response was not valid HTTP"
    if isinstance(exc, ssl.SSLError):
        return "the TLS handshake failed (check the endpoint's certificate)"
    return "the connection failed"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
