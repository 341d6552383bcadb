"""The endpoint policy at connect time, for one boto3 S3 client.

Registration checked the endpoint once, but DNS can change after it. Two checks, each on its
own client only:

- before every request (botocore's ``before-send`` event), the request's host is resolved and
  checked (``EndpointPolicy.check_host``), and the scheme too. A refusal here is raised as a
  ``DestinationPermanentError`` before any byte is sent, and botocore does not retry it.
- on every new connection, the address the socket actually reached is checked
  (``check_address`` on ``getpeername()``), which closes the gap between our lookup and the
  connection's own (DNS rebinding). botocore offers no public hook there, so the guarded
  connection classes replace the client's pool classes; if botocore changes that internal, the
  client refuses to be created rather than run unguarded. A refusal here reaches us wrapped in
  an ``HTTPClientError``, which ``_errors.translate`` unwraps (after botocore's retries).

Through a proxy the peer is the proxy itself, so the socket check stands aside there and the
per-request check of the destination's name applies.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)

from portability.errors import DestinationPermanentError, EndpointRefusedError
from portability.netpolicy import EndpointPolicy

__all__ = ["guard_client", "refusal"]


def refusal(exc: EndpointRefusedError) -> DestinationPermanentError:
    """The error a run fails with when its endpoint is refused after registration."""
    return DestinationPermanentError(
        f"the destination's endpoint was refused: {exc}; fix the destination's endpoint URL",
        detail=exc.detail,
    )


def guard_client(client: Any, policy: EndpointPolicy) -> None:
    """Check ``policy`` before each request and on each new connection of ``client``."""

    def before_send(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        try:
            policy.check_scheme(parts.scheme)
            policy.check_host(parts.hostname or "")
        except EndpointRefusedError as exc:
            raise refusal(exc) from None

    client.meta.events.register("before-send.s3", before_send)
    try:
        pools: dict[str, type] = client._endpoint.http_session._pool_classes_by_scheme
    except AttributeError as exc:  # botocore moved its internals: refuse to run unguarded
        raise RuntimeError("cannot install the endpoint guard on this botocore") from exc
    pools["http"] = _guarded(AWSHTTPConnectionPool, AWSHTTPConnection, policy)
    pools["https"] = _guarded(AWSHTTPSConnectionPool, AWSHTTPSConnection, policy)


def _guarded(pool: type, connection: type, policy: EndpointPolicy) -> type:
    def _new_conn(self: Any) -> socket.socket:
        sock: socket.socket = connection._new_conn(self)  # type: ignore[attr-defined]
        if getattr(self, "proxy", None) is None and not getattr(self, "_tunnel_host", None):
            try:
                policy.check_address(str(sock.getpeername()[0]), str(self.host))
            except EndpointRefusedError as exc:
                sock.close()
                raise refusal(exc) from None
        return sock

    guarded_connection = type(
        f"Guarded{connection.__name__}", (connection,), {"_new_conn": _new_conn}
    )
    return type(f"Guarded{pool.__name__}", (pool,), {"ConnectionCls": guarded_connection})
