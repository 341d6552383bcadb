"""Consent rules as pure functions: may this app receive these categories of this user now?

The export engine calls ``check_consent`` before it reads anything and again between
categories and batches; a failure stops the run before anything more is written.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

from portability.categories import Category
from portability.db.models import Access, App, AppStatus, Authorization, PlatformUser
from portability.errors import ConsentError

__all__ = ["check_consent", "exportable_categories"]


def check_consent(
    *,
    app: App,
    grant: Authorization,
    user: PlatformUser,
    now: datetime,
    eligible_countries: Set[str],
    single_already_claimed_by_this_run: bool = False,
) -> None:
    """Raise ``ConsentError`` naming the first rule the grant breaks.

    ``single_already_claimed_by_this_run`` is true when this run itself marked the single grant
    used (a retry of the same run may go on; any other run may not).
    """
    if app.status != AppStatus.APPROVED:
        raise ConsentError(f"app {app.id} is {app.status}, not approved: no data may be sent")
    if grant.app_id != app.id or grant.user_id != user.id:
        raise ConsentError(f"authorization {grant.id} does not belong to this app and user")
    if grant.revoked_at is not None and grant.revoked_at <= now:
        reason = f" ({grant.revoke_reason})" if grant.revoke_reason else ""
        raise ConsentError(f"authorization {grant.id} was revoked at {grant.revoked_at}{reason}")
    if grant.expires_at is not None and grant.expires_at <= now:
        raise ConsentError(f"authorization {grant.id} expired at {grant.expires_at}")
    if user.deleted_at is not None:
        raise ConsentError(f"user {user.id} deleted their account at {user.deleted_at}")
    if user.country not in eligible_countries:
        raise ConsentError(
            f"user {user.id} is in {user.country}, outside the eligible countries: "
            "data portability is not offered there"
        )
    if (
        grant.access == Access.SINGLE
        and grant.used_at is not None
        and not single_already_claimed_by_this_run
    ):
        raise ConsentError(
            f"authorization {grant.id} is single-use and was already used at {grant.used_at}"
        )


def exportable_categories(
    granted: Set[Category], requested: Set[Category]
) -> tuple[frozenset[Category], frozenset[Category]]:
    """Split the request into (allowed, refused): only granted *and* requested is read."""
    allowed = frozenset(requested & granted)
    return allowed, frozenset(requested - granted)
