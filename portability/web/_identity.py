"""Who the user is: the platform signs it, we verify it.

The platform's front end, which signed the user in, passes a short-lived JWT (PyJWT) carrying
``sub`` (the platform user id) and ``country``, signed with HS256 (a shared secret) or EdDSA
(Ed25519; we hold only the public key). We accept exactly the configured algorithm, the
configured audience (and issuer, when set), and only tokens that say when they were issued and
expire within ``MAX_LIFETIME`` of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jwt

from portability.errors import ConfigurationError, ValidationError
from portability.settings import Settings

__all__ = ["MAX_LIFETIME", "Identity", "verify_assertion"]

MAX_LIFETIME = timedelta(minutes=10)
_LEEWAY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    country: str


def verify_assertion(settings: Settings, token: str) -> Identity:
    """Return who ``token`` says the user is; raise ``ValidationError`` if it is not valid."""
    if settings.web_identity_key is None:
        raise ConfigurationError(
            "PORTABILITY_WEB_IDENTITY_KEY is not set: identity assertions cannot be verified"
        )
    try:
        claims = jwt.decode(
            token,
            settings.web_identity_key.get_secret_value(),
            algorithms=[settings.web_identity_algorithm],
            audience=settings.web_identity_audience,
            issuer=settings.web_identity_issuer,
            leeway=_LEEWAY,
            options={"require": ["exp", "iat", "sub", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise ValidationError(f"the identity assertion is not valid: {exc}") from None
    if claims["exp"] - claims["iat"] > MAX_LIFETIME.total_seconds():
        raise ValidationError("the identity assertion lives too long: at most 10 minutes")
    user_id, country = claims.get("sub"), claims.get("country")
    if not isinstance(user_id, str) or not isinstance(country, str):
        raise ValidationError("the identity assertion must carry 'sub' and 'country' as text")
    return Identity(user_id=user_id, country=country.upper())
