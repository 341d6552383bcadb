"""PKCE (RFC 7636) with the S256 method only: a code is redeemed only with the verifier whose
SHA-256 the app sent when it asked for the code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from portability.errors import OAuthError

__all__ = ["check_challenge", "s256", "verify"]

#: RFC 7636 section 4.1: 43-128 characters of ALPHA / DIGIT / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
#: BASE64URL(SHA256(verifier)) without padding is always 43 characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    """``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`` (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None) -> str:
    """The authorization request's challenge, checked (RFC 7636 section 4.4.1: a missing one,
    or a method we do not support, is ``invalid_request``). ``plain`` is refused: it protects
    nothing once the request is seen."""
    if not challenge:
        raise OAuthError("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if method != "S256":
        raise OAuthError(
            "invalid_request",
            f"code_challenge_method {method!r} is not supported: use S256",
        )
    if not _CHALLENGE.match(challenge):
        raise OAuthError("invalid_request", "code_challenge must be 43 base64url characters (S256)")
    return challenge


def verify(verifier: str | None, challenge: str) -> None:
    """Raise ``OAuthError`` unless ``verifier`` hashes to ``challenge`` (RFC 7636 section 4.6)."""
    if not verifier:
        raise OAuthError("invalid_request", "code_verifier is required (PKCE, RFC 7636)")
    if not _VERIFIER.match(verifier):
        raise OAuthError(
            "invalid_grant", "code_verifier must be 43-128 unreserved characters (RFC 7636)"
        )
    if not hmac.compare_digest(s256(verifier), challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
