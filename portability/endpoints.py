"""Untrusted input stays outside (promise 10): a developer's endpoint URL may not point into
our network.

``check_public_endpoint`` resolves the URL's host and refuses loopback, private, link-local,
multicast, reserved and unspecified addresses (IPv4-mapped IPv6 included), naming the
address. It runs when a destination is registered or re-keyed through the API; deployments
whose developers' buckets live on a private network turn it off with
``PORTABILITY_API_ALLOW_PRIVATE_ENDPOINTS=1`` (the tests do, their S3 servers are on loopback).
The check is made at registration only: a host whose DNS later turns internal (rebinding) is
not caught when the worker connects; that needs the same check in the S3 client's resolver.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from portability.errors import ValidationError

__all__ = ["check_public_endpoint", "is_public_address"]


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_public_endpoint(url: str, *, field: str = "endpoint_url") -> None:
    """Refuse ``url`` unless every address its host resolves to is public."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in {"http", "https"} or not host:
        raise ValidationError(f"endpoint {url!r} must be an http(s) URL with a host", field=field)
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise ValidationError(f"endpoint host {host!r} does not resolve", field=field) from None
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if not is_public_address(address):
            raise ValidationError(
                f"endpoint host {host!r} resolves to {address}, an internal address: "
                "a destination must be reachable on the public internet",
                field=field,
            )
