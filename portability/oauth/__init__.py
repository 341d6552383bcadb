"""The consent flow's rules, without HTTP: OAuth 2.0 authorization codes with PKCE.

RFC 6749 (authorization code grant), RFC 7636 (PKCE, S256 only) and RFC 8252 (loopback
redirects). ``portability.web`` puts them behind pages and ``/oauth/token``.
"""

from portability.oauth._codes import CODE_LIFETIME, Redemption, allow, redeem
from portability.oauth._pkce import s256
from portability.oauth._redirects import check_redirect_uri, matches_registered
from portability.oauth._request import AuthorizationRequest, check_authorization_request
from portability.oauth._scopes import ScopeRequest, parse_scope, scope_for

__all__ = [
    "CODE_LIFETIME",
    "AuthorizationRequest",
    "Redemption",
    "ScopeRequest",
    "allow",
    "check_authorization_request",
    "check_redirect_uri",
    "matches_registered",
    "parse_scope",
    "redeem",
    "s256",
    "scope_for",
]
