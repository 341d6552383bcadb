"""Registering what a transfer needs: apps, users, grants, destinations, schedules.

Every writer (HTTP API, CLI, demo, tests) goes through these functions, so the invariants that
span rows are checked in one place. They take a session and never commit: the caller owns the
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portability import keys
from portability.categories import format_categories, parse_categories
from portability.cron import check_min_interval
from portability.crypto import CredentialBox
from portability.db.base import check_id, utcnow
from portability.db.models import (
    Access,
    ApiKey,
    App,
    AppStatus,
    Authorization,
    Destination,
    OAuthRedirectUri,
    PlatformUser,
    Schedule,
)
from portability.errors import ConflictError, NotFoundError, ValidationError
from portability.events import RemovalReason, ScheduleDisabledReason
from portability.events.producers import (
    app_suspended,
    grant_created,
    grant_removed,
    schedules_disabled,
)
from portability.netpolicy import EndpointPolicy
from portability.timing import first_run_at

_T = TypeVar("_T")
_STRICT = EndpointPolicy()

__all__ = [
    "add_destination",
    "add_user",
    "app_for_api_key",
    "apply_for_app",
    "check_grant_is_live",
    "check_use_case",
    "create_app",
    "create_schedule",
    "delete_destination",
    "delete_schedule",
    "delete_user",
    "destination_credentials",
    "disable_schedules",
    "grant",
    "granted_or",
    "hash_api_key",
    "record_consent",
    "register_redirect_uri",
    "replace_destination_credentials",
    "revoke_grant",
    "schedule_for_app",
    "set_app_status",
    "set_schedule_paused",
    "upsert_user",
]


def hash_api_key(api_key: str) -> str:
    return keys.hash_key(api_key)


def create_app(
    session: Session, *, name: str, contact_email: str, use_case: str
) -> tuple[App, str]:
    """Register a pending app. Returns the app and its API key, shown this once only.

    The key lives in ``api_keys`` (``portability.keys``); ``apps.api_key_hash`` keeps the
    first key's hash only because the column predates key rotation.
    """
    if not use_case or len(use_case.strip()) < 10:
        raise ValidationError(
            "use case must describe in at least 10 characters what the app does",
            field="use_case",
        )
    key_id, api_key = keys.new_key()
    app = App(
        name=name,
        contact_email=contact_email,
        use_case=use_case.strip(),
        status=AppStatus.PENDING,
        api_key_hash=hash_api_key(api_key),
    )
    session.add(app)
    session.flush()
    session.add(ApiKey(app_id=app.id, key_id=key_id, secret_hash=hash_api_key(api_key)))
    session.flush()
    return app, api_key


def app_for_api_key(session: Session, api_key: str) -> App:
    """The app of a working (not revoked, not rotated out) key; ``NotFoundError`` otherwise."""
    verified = keys.verify_key(session, api_key)
    return _get(session, App, verified.app_id)


def set_app_status(session: Session, app_id: int, status: AppStatus | str) -> App:
    """Approve, reject or suspend an app. Suspending disables its schedules and tells its
    developer at once, in this transaction: ``schedule.disabled`` for each schedule it
    stops, ``authorization.removed`` (``app_suspended``) for each live grant."""
    app = _get(session, App, app_id)
    was = app.status
    app.status = AppStatus(status)
    if app.status != was or app.status_changed_at is None:
        app.status_changed_at = utcnow()  # names the suspension its events are recorded for
    if app.status == AppStatus.SUSPENDED and was != AppStatus.SUSPENDED:
        app_suspended(session, app, f"app {app.id} was suspended by the platform's staff")
    if app.status in {AppStatus.SUSPENDED, AppStatus.REJECTED}:
        code = (
            ScheduleDisabledReason.APP_SUSPENDED
            if app.status == AppStatus.SUSPENDED
            else ScheduleDisabledReason.APP_REJECTED
        )
        disable_schedules(
            session, Schedule.app_id == app.id, f"app {app.id} was {app.status}", code=code
        )
    session.flush()
    return app


def add_user(session: Session, *, user_id: str, country: str) -> PlatformUser:
    user = PlatformUser(id=user_id, country=country)
    session.add(user)
    session.flush()
    return user


def register_redirect_uri(session: Session, app_id: int, uri: str) -> OAuthRedirectUri:
    """Register a redirect URI for an app's consent requests (idempotent).

    https only, or http to a loopback address (``portability.oauth.check_redirect_uri``).
    """
    from portability.oauth import check_redirect_uri

    check_redirect_uri(uri)
    _get(session, App, app_id)
    existing = session.scalar(
        select(OAuthRedirectUri).where(
            OAuthRedirectUri.app_id == app_id, OAuthRedirectUri.uri == uri
        )
    )
    if existing is not None:
        return existing
    row = OAuthRedirectUri(app_id=app_id, uri=uri)
    session.add(row)
    session.flush()
    return row


def grant(
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
    """Record a user's grant to an app; refuses users outside the eligible countries and apps
    that staff have not approved."""
    now = now or utcnow()
    user = _get(session, PlatformUser, user_id)
    app = _get(session, App, app_id)
    if not app.is_approved:
        raise ValidationError(f"app {app.id} is {app.status}: only approved apps can be granted")
    if user.country not in eligible_countries:
        raise ValidationError(
            f"user {user.id} is in {user.country}: only users in "
            f"{', '.join(sorted(eligible_countries))} can grant data portability"
        )
    if expires_at is not None and expires_at <= now:
        raise ValidationError(f"expiry {expires_at.isoformat()} is not in the future")
    auth = Authorization(
        user_id=user.id,
        app_id=app.id,
        categories=categories,
        access=access,
        granted_at=now,
        expires_at=expires_at,
    )
    session.add(auth)
    session.flush()
    grant_created(session, auth)
    return auth


def revoke_grant(
    session: Session,
    authorization_id: int,
    *,
    reason: str = "revoked by the user",
    now: datetime | None = None,
    removal: RemovalReason = RemovalReason.USER_REVOKED,
) -> Authorization:
    """Revoke a grant: running exports stop at their next check; its schedules are disabled.
    ``removal`` is the reason the app's ``authorization.removed`` event gives."""
    auth = _get(session, Authorization, authorization_id)
    if auth.revoked_at is None:
        auth.revoked_at = now or utcnow()
        auth.revoke_reason = reason
        grant_removed(session, auth.id, removal, reason)
    disable_schedules(
        session,
        Schedule.authorization_id == auth.id,
        f"authorization {auth.id} revoked: {reason}",
        code=ScheduleDisabledReason.AUTHORIZATION_REVOKED,
    )
    session.flush()
    return auth


def add_destination(
    session: Session,
    box: CredentialBox,
    *,
    app_id: int,
    bucket: str,
    access_key_id: str,
    secret_access_key: str,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    prefix: str = "",
    addressing_style: str = "path",
    server_side_encryption: str | None = None,
    compression: str = "gzip",
    name: str = "default",
    endpoint_policy: EndpointPolicy = _STRICT,
) -> Destination:
    """Register an app's bucket; the credentials are sealed before they reach the row.

    ``endpoint_url`` must pass ``endpoint_policy`` (``Settings.endpoint_policy``; by default
    https to a public address only): its host is resolved now, and again at every connection.
    """
    if endpoint_url is not None:  # first: the DNS lookup waits for no open transaction
        endpoint_policy.check_url(endpoint_url)
    _get(session, App, app_id)
    if not access_key_id or not secret_access_key:
        raise ValidationError("destination needs both an access key id and a secret access key")
    destination = Destination(
        app_id=app_id,
        name=name,
        endpoint_url=endpoint_url,
        region=region,
        bucket=bucket,
        prefix=prefix,
        addressing_style=addressing_style,
        server_side_encryption=server_side_encryption,
        compression=compression,
        credentials_encrypted=box.seal(
            {"access_key_id": access_key_id, "secret_access_key": secret_access_key}
        ),
    )
    _refuse_overlap(session, destination)
    session.add(destination)
    session.flush()
    return destination


def _refuse_overlap(session: Session, new: Destination) -> None:
    """Two destinations of one app whose objects could collide (same endpoint and bucket, one
    prefix inside the other) would interleave two streams' manifests in one folder."""
    others = session.scalars(
        select(Destination).where(
            Destination.app_id == new.app_id,
            Destination.bucket == new.bucket,
            Destination.id != (new.id or 0),
        )
    )
    for other in others:
        same_endpoint = (other.endpoint_url or "").rstrip("/") == (new.endpoint_url or "").rstrip(
            "/"
        )
        if same_endpoint and _prefixes_overlap(other.prefix, new.prefix):
            raise ConflictError(
                f"destination overlaps destination {other.id} ({other.name!r}): same endpoint "
                f"and bucket {new.bucket!r}, and prefix {new.prefix!r} and {other.prefix!r} "
                "overlap, so their objects could collide; choose a prefix outside the other's"
            )


def _prefixes_overlap(first: str, second: str) -> bool:
    a, b = [p.strip("/").split("/") if p.strip("/") else [] for p in (first, second)]
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def destination_credentials(box: CredentialBox, destination: Destination) -> dict[str, str]:
    """Decrypt a destination's credentials, in memory only."""
    return box.open(destination.credentials_encrypted)


def create_schedule(
    session: Session,
    *,
    app_id: int,
    authorization_id: int,
    destination_id: int,
    categories: str | Iterable[str],
    cron: str | None = None,
    timezone: str = "UTC",
    min_interval_minutes: int = 15,
    max_jitter_seconds: int = 0,
    now: datetime | None = None,
) -> Schedule:
    """A one-time (``cron=None``) or recurring transfer of a grant to a destination.

    Refuses a grant or destination of another app, categories wider than the grant, and a
    recurring schedule on a single-use grant.
    """
    now = now or utcnow()
    auth = _get(session, Authorization, authorization_id)
    destination = _get(session, Destination, destination_id)
    if auth.app_id != app_id:
        raise NotFoundError(f"authorization {authorization_id} not found for app {app_id}")
    if destination.app_id != app_id:
        raise NotFoundError(f"destination {destination_id} not found for app {app_id}")
    requested = parse_categories(categories)
    wider = requested - auth.category_set
    if wider:
        raise ValidationError(
            f"categories {format_categories(wider)} are not in authorization {auth.id}, "
            f"which grants {auth.categories}",
            field="categories",
        )
    if cron is not None and auth.access == Access.SINGLE:
        raise ValidationError(
            f"authorization {auth.id} is single-use: schedule it once, not on a cron"
        )
    schedule = Schedule(
        app_id=app_id,
        authorization_id=auth.id,
        destination_id=destination.id,
        categories=format_categories(requested),
        timezone=timezone,
    )
    if cron is not None:
        schedule.cron = cron
        check_min_interval(schedule.cron, timezone, min_interval_minutes)
    session.add(schedule)
    session.flush()
    schedule.next_run_at = first_run_at(schedule, now, max_jitter_seconds=max_jitter_seconds)
    session.flush()
    return schedule


def disable_schedules(
    session: Session,
    where: object,
    reason: str,
    *,
    code: ScheduleDisabledReason = ScheduleDisabledReason.INVALID_SCHEDULE,
) -> None:
    """Stop schedules matching ``where`` from running again, recording why (``reason``, in
    words; ``code``, the ``schedule.disabled`` event's reason)."""
    stopped = session.execute(
        update(Schedule)
        .where(where, Schedule.next_run_at.is_not(None))  # type: ignore[arg-type]
        .values(next_run_at=None, disabled_reason=reason)
        .returning(Schedule.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    schedules_disabled(session, list(stopped), code.value, reason)


def _get(session: Session, model: type[_T], key: object) -> _T:
    if isinstance(key, int):
        check_id(key, f"{model.__name__.lower()} id")
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(f"{model.__name__.lower()} {key} not found")
    return row


# The developer API's and the platform's writes live in ``portability._registry_api`` (this
# module stays the one import path for every writer).
from portability._registry_api import (  # noqa: E402
    apply_for_app,
    check_grant_is_live,
    check_use_case,
    delete_destination,
    delete_schedule,
    delete_user,
    granted_or,
    record_consent,
    replace_destination_credentials,
    schedule_for_app,
    set_schedule_paused,
    upsert_user,
)
