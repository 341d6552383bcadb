"""Redirect URIs: which an app may register, and when a request's URI matches a registered one.

The rules (RFC 6749 section 3.1.2, RFC 8252 sections 7.3 and 8.3, and the same spirit as
``portability.netpolicy``):

- an absolute ``https`` URI with a host, no user info and no fragment;
- or, for apps running on the user's own machine, ``http`` to a loopback IP literal
  (``127.0.0.1``, ``[::1]``); ``localhost`` is refused, since a name can be made to resolve
  elsewhere;
- a request's ``redirect_uri`` must equal a registered one character for character, except that
  a loopback URI matches on any port (RFC 8252 section 7.3: native apps take a free port).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

from portability.errors import ValidationError

__all__ = ["check_redirect_uri", "matches_registered"]

MAX_LENGTH = 2000


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return None
    return parts


def _is_loopback_literal(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: str) -> str:
    """Return ``uri`` if an app may register it; raise ``ValidationError`` saying why not."""
    if not uri or len(uri) > MAX_LENGTH:
        raise ValidationError(f"redirect URI must be 1-{MAX_LENGTH} characters")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in uri):
        raise ValidationError("redirect URI must not contain spaces or control characters")
    parts = _split(uri)
    if parts is None or not parts.scheme or not parts.hostname:
        raise ValidationError(f"redirect URI {uri!r} is not an absolute URI with a host")
    if parts.fragment or "#" in uri:
        raise ValidationError("redirect URI must not contain a fragment (RFC 6749 3.1.2)")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("redirect URI must not contain user info")
    if parts.scheme == "https":
        return uri
    if parts.scheme == "http" and _is_loopback_literal(parts.hostname):
        return uri
    if parts.scheme == "http" and parts.hostname == "localhost":
        raise ValidationError(
            "redirect URI uses http://localhost: use the loopback address 127.0.0.1 or [::1] "
            "(RFC 8252 8.3)"
        )
    raise ValidationError(
        f"redirect URI {uri!r} must use https (http only to a loopback address, RFC 8252 7.3)"
    )


def matches_registered(uri: str, registered: Iterable[str]) -> bool:
    """True when ``uri`` is one of ``registered`` (exact, or a loopback URI on another port)."""
    candidates = list(registered)
    if uri in candidates:
        return True
    asked = _split(uri)
    if asked is None or asked.scheme != "http" or not _is_loopback_literal(asked.hostname):
        return False
    for known in candidates:
        parts = _split(known)
        if (
            parts is not None
            and parts.scheme == "http"
            and parts.hostname == asked.hostname
            and _is_loopback_literal(parts.hostname)
            and (parts.path, parts.query, parts.fragment)
            == (asked.path, asked.query, asked.fragment)
            and asked.username is None
        ):
            return True
    return False
