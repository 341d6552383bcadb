"""The writes the developer API and the platform's internal API make, re-exported by
``portability.registry`` (import them from there).

Each developer-side function takes the acting app's id and reaches rows only through
``portability.scope.owned``: another app's row is "not found", exactly like a missing one.
Like the rest of the registry they take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portability.categories import parse_categories
from portability.crypto import CredentialBox
from portability.db.base import utcnow
from portability.db.models import (
    Access,
    App,
    Authorization,
    Destination,
    PlatformUser,
    Schedule,
)
from portability.errors import ConflictError, ConsentError, NotFoundError, ValidationError
from portability.scope import owned

__all__ = [
    "apply_for_app",
    "check_grant_is_live",
    "check_use_case",
    "delete_destination",
    "delete_schedule",
    "delete_user",
    "granted_or",
    "record_consent",
    "replace_destination_credentials",
    "schedule_for_app",
    "set_schedule_paused",
    "upsert_user",
]


# -- the developer API's writes (issue 17) -------------------------------------------------
# Each takes the acting app's id and reaches rows only through ``portability.scope.owned``:
# another app's row is "not found", exactly like a missing one.

#: Use cases that say nothing about the app, whatever their length.
_BOILERPLATE = frozenset(
    {
        "test",
        "testing",
        "tbd",
        "todo",
        "n/a",
        "na",
        "none",
        "asdf",
        "lorem ipsum",
        "demo",
        "data",
        "data portability",
        "get data",
        "get user data",
        "my app",
        "app",
        "use case",
    }
)
MIN_USE_CASE_CHARS = 40
MIN_USE_CASE_WORDS = 6


def check_use_case(use_case: str) -> str:
    """A use case staff can review: a sentence or more saying what the app does with the data."""
    text = " ".join((use_case or "").split())
    if not text:
        raise ValidationError(
            "use case is empty: describe what the app does with the data", field="use_case"
        )
    if text.lower().strip(" .!") in _BOILERPLATE:
        raise ValidationError(
            f"use case {text!r} is a placeholder: say what the app does with which data, for whom",
            field="use_case",
        )
    words = [w for w in text.split() if any(ch.isalpha() for ch in w)]
    if len(text) < MIN_USE_CASE_CHARS or len({w.lower() for w in words}) < MIN_USE_CASE_WORDS:
        raise ValidationError(
            f"use case is too short to review ({len(text)} characters, {len(words)} words): "
            f"describe in at least {MIN_USE_CASE_CHARS} characters and {MIN_USE_CASE_WORDS} "
            "different words what the app does with which categories of data",
            field="use_case",
        )
    return text


def apply_for_app(
    session: Session, *, name: str, contact_email: str, use_case: str
) -> tuple[App, str]:
    """A developer's application: a pending app and its first API key (shown once)."""
    from portability.registry import create_app

    return create_app(
        session, name=name, contact_email=contact_email, use_case=check_use_case(use_case)
    )


def delete_destination(
    session: Session, *, app_id: int, destination_id: int, now: datetime | None = None
) -> Destination:
    """Retire a destination; refused (``ConflictError``) while a schedule still uses it."""
    destination = owned(session, Destination, destination_id, app_id)
    users = session.scalars(
        select(Schedule.id).where(
            Schedule.destination_id == destination.id, Schedule.deleted_at.is_(None)
        )
    ).all()
    if users:
        raise ConflictError(
            f"destination {destination_id} is used by schedule(s) "
            f"{', '.join(map(str, sorted(users)))}: delete them first"
        )
    destination.deleted_at = now or utcnow()
    session.flush()
    return destination


def replace_destination_credentials(
    session: Session,
    box: CredentialBox,
    *,
    app_id: int,
    destination_id: int,
    access_key_id: str,
    secret_access_key: str,
) -> Destination:
    """Seal new keys into an app's destination (the caller has already tested them)."""
    destination = owned(session, Destination, destination_id, app_id)
    if not access_key_id or not secret_access_key:
        raise ValidationError("destination needs both an access key id and a secret access key")
    destination.credentials_encrypted = box.seal(
        {"access_key_id": access_key_id, "secret_access_key": secret_access_key}
    )
    session.flush()
    return destination


def schedule_for_app(
    session: Session,
    *,
    app_id: int,
    authorization_id: int,
    destination_id: int,
    categories: str | Iterable[str],
    cron: str,
    timezone: str,
    min_interval_minutes: int,
    max_jitter_seconds: int,
    now: datetime | None = None,
) -> Schedule:
    """A recurring schedule of the app's own ongoing, live grant to its own destination."""
    now = now or utcnow()
    auth = owned(session, Authorization, authorization_id, app_id)
    owned(session, Destination, destination_id, app_id)
    check_grant_is_live(auth, now)
    if auth.access != Access.ONGOING:
        raise ValidationError(
            f"grant {auth.id} is single-use: only an ongoing grant can be scheduled; "
            "create a one-time transfer instead",
            field="grant_id",
        )
    from portability.registry import create_schedule

    return create_schedule(
        session,
        app_id=app_id,
        authorization_id=auth.id,
        destination_id=destination_id,
        categories=granted_or(auth, categories),
        cron=cron,
        timezone=timezone,
        min_interval_minutes=min_interval_minutes,
        max_jitter_seconds=max_jitter_seconds,
        now=now,
    )


def granted_or(auth: Authorization, categories: str | Iterable[str]) -> str | Iterable[str]:
    """``all`` in a developer's request means every category the grant covers."""
    if categories == "all" or (not isinstance(categories, str) and list(categories) == ["all"]):
        return auth.categories
    return categories


def check_grant_is_live(auth: Authorization, now: datetime) -> None:
    if auth.revoked_at is not None:
        raise ConsentError(f"grant {auth.id} was revoked: the user must grant access again")
    if auth.expires_at is not None and auth.expires_at <= now:
        raise ConsentError(f"grant {auth.id} expired at {auth.expires_at.isoformat()}")
    if auth.access == Access.SINGLE and auth.is_used:
        raise ConsentError(f"grant {auth.id} was single-use and has been used")


def set_schedule_paused(
    session: Session, *, app_id: int, schedule_id: int, paused: bool
) -> Schedule:
    """Pause or resume; resuming a schedule that finished or was disabled is a conflict."""
    schedule = owned(session, Schedule, schedule_id, app_id)
    if not paused and schedule.next_run_at is None:
        why = schedule.disabled_reason or "it has no run left (a one-time schedule that ran)"
        raise ConflictError(f"schedule {schedule_id} cannot resume: {why}")
    schedule.is_paused = paused
    session.flush()
    return schedule


def delete_schedule(
    session: Session, *, app_id: int, schedule_id: int, now: datetime | None = None
) -> Schedule:
    """Stop a schedule for good; its past runs stay visible."""
    schedule = owned(session, Schedule, schedule_id, app_id)
    schedule.deleted_at = now or utcnow()
    schedule.next_run_at = None
    schedule.disabled_reason = "deleted by the developer"
    session.flush()
    return schedule


# -- the platform's internal API (issue 17) ------------------------------------------------


def upsert_user(session: Session, *, user_id: str, country: str) -> tuple[PlatformUser, bool]:
    """Create the platform user or update their country; True when created."""
    user = session.get(PlatformUser, user_id)
    if user is None:
        from portability.registry import add_user

        return add_user(session, user_id=user_id, country=country), True
    if user.deleted_at is not None:
        raise ConflictError(f"user {user_id} deleted their account: the id cannot be reused")
    user.country = country
    session.flush()
    return user, False


#: The revoke reason a deleted user's grants are left with.
USER_DELETED_REASON = "the user deleted their account"


def delete_user(
    session: Session, *, user_id: str, now: datetime | None = None
) -> tuple[PlatformUser, int]:
    """The platform's word that a user deleted their account; returns the user and how many
    grants were revoked now.

    In this one transaction: every live grant is revoked (each app is told once, with
    ``authorization.removed`` reason ``user_deleted``) and its schedules disabled, so running
    exports stop at their next consent check; the user's download archives become due for
    deletion at the next housekeeping pass; and no grant can be recorded for the id again.
    Idempotent: a second call revokes nothing."""
    from portability.events import RemovalReason
    from portability.registry import revoke_grant
    from portability.user_exports.lifecycle import end_user_exports

    user = session.get(PlatformUser, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    now = now or utcnow()
    if user.deleted_at is None:
        user.deleted_at = now
    live = session.scalars(
        select(Authorization.id).where(
            Authorization.user_id == user_id, Authorization.revoked_at.is_(None)
        )
    ).all()
    for authorization_id in live:
        revoke_grant(
            session,
            authorization_id,
            reason=USER_DELETED_REASON,
            now=now,
            removal=RemovalReason.USER_DELETED,
        )
    end_user_exports(session, user_id, now=now)
    session.flush()
    return user, len(live)


def record_consent(
    session: Session,
    *,
    user_id: str,
    app_id: int,
    categories: str | Iterable[str],
    access: Access | str,
    eligible_countries: Set[str],
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Authorization:
    """The grant a user gave on the platform's consent page.

    Refused (``ConsentError``) for an app that is not approved and for a user outside the
    eligible countries; unknown categories are a ``ValidationError``.
    """
    from portability.registry import grant

    parse_categories(categories)
    app = session.get(App, app_id)
    user = session.get(PlatformUser, user_id)
    if app is None:
        raise NotFoundError(f"app {app_id} not found")
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    if not app.is_approved:
        raise ConsentError(f"app {app.id} is {app.status}: only approved apps can be granted")
    if user.deleted_at is not None:
        raise ConsentError(f"user {user.id} deleted their account: no grant can be recorded")
    if user.country not in eligible_countries:
        raise ConsentError(
            f"user {user.id} is in {user.country}: only users in the EEA "
            "(the eligible countries) can grant data portability"
        )
    return grant(
        session,
        user_id=user_id,
        app_id=app_id,
        categories=categories,
        access=access,
        eligible_countries=eligible_countries,
        expires_at=expires_at,
        now=now,
    )
