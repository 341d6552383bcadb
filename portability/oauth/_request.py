"""The authorization request (RFC 6749 section 4.1.1 with RFC 7636), checked in the RFCs' order.

Until the client and its redirect URI are verified, an error must not send the browser
anywhere: it is shown to the user (``OAuthError.redirect_uri`` unset). After that, errors go
back to the app at the verified URI with the request's ``state`` (section 4.1.2.1). Two
refusals are ours and stricter than the RFC: a missing ``redirect_uri`` (with PKCE every app
sends one) and an app not approved by staff are shown as pages, so that a pending app cannot
use the consent screen as a redirector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portability.db.models import App, OAuthRedirectUri
from portability.errors import OAuthError
from portability.oauth._pkce import check_challenge
from portability.oauth._redirects import matches_registered
from portability.oauth._scopes import ScopeRequest, parse_scope

__all__ = ["AuthorizationRequest", "check_authorization_request"]

#: Parameters that must not repeat (RFC 6749 section 3.1).
_SINGLE = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A request that passed every check: what the consent page shows and the form carries."""

    app_id: int
    app_name: str
    use_case: str
    redirect_uri: str
    state: str | None
    scope: ScopeRequest
    code_challenge: str

    def as_params(self) -> dict[str, str]:
        """The query parameters that reproduce this request (for forms and sign-in links)."""
        params = {
            "client_id": str(self.app_id),
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope.scope,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.state is not None:
            params["state"] = self.state
        return params


def check_authorization_request(
    session: Session, params: Mapping[str, Sequence[str]]
) -> AuthorizationRequest:
    """Check a request's parameters (each name mapped to every value it was given)."""

    def one(name: str) -> str | None:
        values = params.get(name) or []
        return values[0] if values else None

    for name in ("client_id", "redirect_uri"):
        if len(params.get(name) or []) > 1:
            raise OAuthError("invalid_request", f"{name} is given more than once")
    app = _client(session, one("client_id"))
    redirect_uri = one("redirect_uri")
    if not redirect_uri:
        raise OAuthError("invalid_request", f"{app.name} sent no redirect_uri")
    registered = session.scalars(
        select(OAuthRedirectUri.uri).where(OAuthRedirectUri.app_id == app.id)
    ).all()
    if not matches_registered(redirect_uri, registered):
        raise OAuthError(
            "invalid_request",
            f"the redirect address is not one that {app.name} registered, so you are not "
            "sent there",
        )
    if not app.is_approved:
        raise OAuthError(
            "unauthorized_client",
            f"{app.name} is not approved to receive data (its status is {app.status})",
        )

    state = one("state")

    def refuse(error: str, message: str) -> OAuthError:
        return OAuthError(error, message, redirect_uri=redirect_uri, state=state)

    repeated = [name for name in _SINGLE if len(params.get(name) or []) > 1]
    if repeated:
        raise refuse("invalid_request", f"{repeated[0]} is given more than once")
    response_type = one("response_type")
    if not response_type:
        raise refuse("invalid_request", "response_type is required")
    if response_type != "code":
        raise refuse("unsupported_response_type", "only response_type=code is supported")
    try:
        challenge = check_challenge(one("code_challenge"), one("code_challenge_method"))
        scope = parse_scope(one("scope"))
    except OAuthError as exc:
        raise refuse(exc.error, str(exc)) from None
    return AuthorizationRequest(
        app_id=app.id,
        app_name=app.name,
        use_case=app.use_case,
        redirect_uri=redirect_uri,
        state=state,
        scope=scope,
        code_challenge=challenge,
    )


def _client(session: Session, client_id: str | None) -> App:
    if not client_id:
        raise OAuthError("invalid_request", "the request names no app (client_id is missing)")
    app = session.get(App, int(client_id)) if client_id.isdigit() and len(client_id) < 10 else None
    if app is None:
        raise OAuthError("invalid_client", f"no app has the client_id {client_id!r}")
    return app
