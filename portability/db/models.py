"""The control-plane tables: apps, users, grants, destinations, schedules, runs, streams.

Single-field invariants are enforced here with ``@validates`` (a bad value never reaches the
database); invariants that span rows (schedule categories within the grant's) live in
``portability.registry``, which every writer goes through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, validates

from portability.categories import Category, format_categories, parse_categories
from portability.countries import check_country
from portability.cron import normalize_cron, zone
from portability.db.audit_log import AuditEntry
from portability.db.base import Base, UTCDateTime, utcnow
from portability.errors import ValidationError
from portability.netpolicy import check_url_shape

__all__ = [
    "Access",
    "ApiKey",
    "App",
    "AppStatus",
    "AuditEntry",
    "Authorization",
    "Destination",
    "FeedMark",
    "IdempotencyRecord",
    "OAuthCode",
    "OAuthRedirectUri",
    "PlatformUser",
    "ReplayReason",
    "Run",
    "RunCategory",
    "RunStatus",
    "Schedule",
    "Stream",
]


class AppStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"


class Access(StrEnum):
    SINGLE = "single"
    ONGOING = "ongoing"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _categories_text(value: object) -> str:
    if isinstance(value, str | list | tuple | set | frozenset):
        return format_categories(parse_categories(value))  # type: ignore[arg-type,unused-ignore]
    raise ValidationError(f"categories must be a list or comma-separated text, not {value!r}")


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(320))
    use_case: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=AppStatus.PENDING)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @validates("name")
    def _check_name(self, _key: str, value: str) -> str:
        if not value or not value.strip():
            raise ValidationError("app name must not be empty")
        return value.strip()

    @validates("contact_email")
    def _check_email(self, _key: str, value: str) -> str:
        if not _EMAIL.match(value or ""):
            raise ValidationError(f"contact email {value!r} is not an email address")
        return value

    @validates("status")
    def _check_status(self, _key: str, value: str) -> str:
        try:
            return AppStatus(value).value
        except ValueError:
            raise ValidationError(
                f"app status {value!r} is not one of {', '.join(s.value for s in AppStatus)}"
            ) from None

    @property
    def is_approved(self) -> bool:
        return self.status == AppStatus.APPROVED


class ApiKey(Base):
    """One of an app's API keys: only a SHA-256 of the whole key is kept.

    ``key_id`` is the visible head of the key (``pk_<12 hex>``), safe to show and log. A key
    works while it is not revoked and ``expires_at`` (set when the key is rotated out) is in
    the future. The keys are 256-bit random, so a plain SHA-256 cannot be brute-forced and
    keeps the lookup one indexed equality.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def is_usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class IdempotencyRecord(Base):
    """The answer to an API create made with an ``Idempotency-Key``, replayed on a retry.

    ``fingerprint`` is a SHA-256 of the method, path and body: the same key with another
    request is refused instead of answered with the first one's object.
    """

    __tablename__ = "idempotency_keys"

    app_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlatformUser(Base):
    """A user of the platform; ``country`` decides whether they may grant at all."""

    __tablename__ = "platform_users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the platform told us the user deleted their account: nothing more is sent.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @validates("id")
    def _check_id(self, _key: str, value: str) -> str:
        if not _USER_ID.match(value or ""):
            raise ValidationError(
                f"user id {value!r} must be 1-64 characters of letters, digits, '_' or '-'"
            )
        return value

    @validates("country")
    def _check_country(self, _key: str, value: str) -> str:
        return check_country(value, "user country")


class Authorization(Base):
    """A user's grant to one app: which categories, once or ongoing, until when."""

    __tablename__ = "authorizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("platform_users.id"), index=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    categories: Mapped[str] = mapped_column(String(100))
    access: Mapped[str] = mapped_column(String(16))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by_run_id: Mapped[int | None] = mapped_column(Integer)

    @validates("categories")
    def _check_categories(self, _key: str, value: object) -> str:
        return _categories_text(value)

    @validates("access")
    def _check_access(self, _key: str, value: str) -> str:
        try:
            return Access(value).value
        except ValueError:
            raise ValidationError(f"access {value!r} must be 'single' or 'ongoing'") from None

    @property
    def category_set(self) -> frozenset[Category]:
        return parse_categories(self.categories)

    @property
    def is_used(self) -> bool:
        return self.used_at is not None


class Destination(Base):
    """An app's S3-compatible bucket. Credentials are a Fernet token, never clear text."""

    __tablename__ = "destinations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="default")
    endpoint_url: Mapped[str | None] = mapped_column(String(500))
    region: Mapped[str] = mapped_column(String(64), default="us-east-1")
    bucket: Mapped[str] = mapped_column(String(63))
    prefix: Mapped[str] = mapped_column(String(500), default="")
    addressing_style: Mapped[str] = mapped_column(String(16), default="path")
    server_side_encryption: Mapped[str | None] = mapped_column(String(32))
    compression: Mapped[str] = mapped_column(String(8), default="gzip")
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set when the developer deletes it; runs keep pointing at the row, nothing new may.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @validates("endpoint_url")
    def _check_endpoint(self, _key: str, value: str | None) -> str | None:
        """The settings-independent part of the endpoint policy (``portability.netpolicy``):
        http(s), a host, no user info, never a metadata or reserved address. Whether http and
        private hosts are allowed depends on settings: ``registry.add_destination`` checks it,
        and the S3 client again at every connection."""
        if value is not None:
            check_url_shape(value)
        return value

    @validates("bucket")
    def _check_bucket(self, _key: str, value: str) -> str:
        if not _BUCKET.match(value or ""):
            raise ValidationError(
                f"bucket name {value!r} must be 3-63 lowercase letters, digits, '.' or '-'"
            )
        return value

    @validates("prefix")
    def _check_prefix(self, _key: str, value: str) -> str:
        value = value or ""
        if value.startswith("/"):
            raise ValidationError(f"destination prefix {value!r} must not start with '/'")
        if ".." in value.split("/"):
            raise ValidationError(f"destination prefix {value!r} must not contain '..'")
        if "\\" in value or any(ord(ch) < 32 for ch in value):
            raise ValidationError(f"destination prefix {value!r} has a forbidden character")
        return value.strip("/")

    @validates("addressing_style")
    def _check_addressing(self, _key: str, value: str) -> str:
        if value not in {"path", "virtual", "auto"}:
            raise ValidationError(f"addressing style {value!r} must be path, virtual or auto")
        return value

    @validates("server_side_encryption")
    def _check_sse(self, _key: str, value: str | None) -> str | None:
        if value not in {None, "AES256", "aws:kms"}:
            raise ValidationError(f"server-side encryption {value!r} must be AES256 or aws:kms")
        return value

    @validates("compression")
    def _check_compression(self, _key: str, value: str) -> str:
        if value not in {"gzip", "zstd", "none"}:
            raise ValidationError(f"compression {value!r} must be gzip, zstd or none")
        return value


class Schedule(Base):
    """What to send where and when. ``next_run_at`` is NULL once a schedule is done."""

    __tablename__ = "schedules"
    __table_args__ = (
        # The scheduler's claim query walks this partial index; paused or finished
        # schedules are not in it at all, so an idle tick costs one index probe.
        Index(
            "ix_schedules_due",
            "next_run_at",
            postgresql_where=text("next_run_at IS NOT NULL AND NOT is_paused"),
            sqlite_where=text("next_run_at IS NOT NULL AND NOT is_paused"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    authorization_id: Mapped[int] = mapped_column(ForeignKey("authorizations.id"), index=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id"), index=True)
    categories: Mapped[str] = mapped_column(String(100))
    cron: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    last_run_id: Mapped[int | None] = mapped_column(Integer)
    skipped_runs: Mapped[int] = mapped_column(Integer, default=0)
    last_skip_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set when the developer deletes it (``next_run_at`` is cleared too); its runs remain.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @validates("categories")
    def _check_categories(self, _key: str, value: object) -> str:
        return _categories_text(value)

    @validates("timezone")
    def _check_timezone(self, _key: str, value: str) -> str:
        zone(value)  # the one time-zone check, shared with the cron arithmetic
        return value

    @validates("cron")
    def _check_cron(self, _key: str, value: str | None) -> str | None:
        return None if value is None else normalize_cron(value)

    @property
    def is_once(self) -> bool:
        return self.cron is None

    @property
    def category_set(self) -> frozenset[Category]:
        return parse_categories(self.categories)


class Run(Base):
    """One execution of a schedule (or a one-time transfer).

    Status moves only through ``portability.runs`` guarded transitions.
    """

    __tablename__ = "runs"
    # On PostgreSQL the table is partitioned by month of ``queued_at`` and its primary key is
    # (id, queued_at) (migration 0010); ``id`` alone stays unique by its sequence and is the
    # mapper's identity on both backends. ``queued_at`` is written once, never updated.
    __table_args__ = (
        Index("ix_runs_status_queued_at", "status", "queued_at"),
        # History retention deletes the oldest finished runs first (portability.history).
        Index("ix_runs_finished_at", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"), index=True)
    authorization_id: Mapped[int] = mapped_column(ForeignKey("authorizations.id"), index=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id"))
    categories: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    rerun_of: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(32))
    #: What stopped the run, in our words: shown to the developer.
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Raw diagnostic (server messages, driver errors) for staff only: never shown to developers.
    error_detail: Mapped[str | None] = mapped_column(Text)
    #: Every attempt's start and end, as JSON lines (``portability.attempts``): staff only.
    attempt_log: Mapped[str | None] = mapped_column(Text)

    @validates("categories")
    def _check_categories(self, _key: str, value: object) -> str:
        return _categories_text(value)

    @property
    def category_set(self) -> frozenset[Category]:
        return parse_categories(self.categories)


class RunCategory(Base):
    """A run's plan and result for one stream: the positions its delivery covers.

    An increment's range is fixed at the first attempt so a retry rewrites byte-identical
    parts; a replay (``replay_reason`` set) reads the current state afresh on every attempt.
    """

    __tablename__ = "run_categories"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The run's ``queued_at``: on PostgreSQL the partition key, shared with ``runs`` so a month
    #: of history is one partition of each (``portability.db.partitions``). There the real
    #: primary key is (run_id, run_queued_at, category) and each month's partition references
    #: that month's runs by (run_id, run_queued_at) -> (id, queued_at); the mapper keeps the
    #: keys above on both backends.
    run_queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    from_position: Mapped[str | None] = mapped_column(Text)
    to_position: Mapped[str | None] = mapped_column(Text)
    sequence: Mapped[int | None] = mapped_column(Integer)
    replay_reason: Mapped[str | None] = mapped_column(String(32))
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    manifest_key: Mapped[str | None] = mapped_column(String(1024))


class ReplayReason(StrEnum):
    """Why a delivery is a full replay of the current state rather than an increment."""

    FIRST_DELIVERY = "first_delivery"
    LOST_HISTORY = "lost_history"
    REQUESTED = "requested"
    BEHIND_RETENTION = "behind_retention"


class Stream(Base):
    """One (grant, destination, category): the unit of delivery.

    ``position`` is where the stream stands in the change feed (NULL before its first
    delivery, which is a full replay); ``sequence`` counts its manifests; ``planned_sequence``
    is above ``sequence`` only while a delivery is in flight, the one time a manifest beyond
    the position can exist. ``last_manifest_*`` let a run check cheaply that the bucket still
    holds the stream's history. The lease columns serialise the stream's exports.
    """

    __tablename__ = "streams"
    __table_args__ = (
        UniqueConstraint("authorization_id", "destination_id", "category"),
        Index("ix_streams_lease_run_id", "lease_run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    authorization_id: Mapped[int] = mapped_column(ForeignKey("authorizations.id"), index=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    position: Mapped[str | None] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    planned_sequence: Mapped[int] = mapped_column(Integer, default=0)
    replay_reason: Mapped[str | None] = mapped_column(String(32))
    last_manifest_key: Mapped[str | None] = mapped_column(String(1024))
    last_manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    last_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_run_id: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @validates("category")
    def _check_category(self, _key: str, value: str) -> str:
        try:
            return Category(value).value
        except ValueError:
            raise ValidationError(f"unknown category {value!r}") from None


class FeedMark(Base):
    """A snapshot of the feed taken by the retention task: once a mark is older than the
    retention window, feed rows of transactions below its ``xmin`` may be deleted
    (``is_horizon``), and a stream not yet past it gets a full replay."""

    __tablename__ = "feed_marks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    snapshot_xmin: Mapped[int] = mapped_column(BigInteger)
    is_horizon: Mapped[bool] = mapped_column(Boolean, default=False)


#: Columns whose validator already bounds the length with a more specific message.
_SIZED_BY_RULE = frozenset({"id", "country", "bucket"})
_LABELS = {"PlatformUser": "user", "RunCategory": "run category"}


def _refuse_overlong_text() -> None:
    """Every sized text column refuses a longer value with a ``ValidationError`` naming the
    field, before the database answers with a raw ``DataError`` (or, on SQLite, stores it)."""
    for model in (App, PlatformUser, Authorization, Destination, Schedule, Run, RunCategory):
        for column in model.__table__.columns:
            length = getattr(column.type, "length", None)
            if isinstance(column.type, String) and length and column.key not in _SIZED_BY_RULE:
                event.listen(
                    getattr(model, column.key),
                    "set",
                    _length_check(
                        f"{model.__name__.lower()} {column.key.replace('_', ' ')}", length
                    ),
                    retval=True,
                )


def _length_check(field: str, length: int) -> Callable[[object, object, object, object], object]:
    def check(_target: object, value: object, _old: object, _initiator: object) -> object:
        if isinstance(value, str) and len(value) > length:
            raise ValidationError(
                f"{field} is {len(value):,} characters long; at most {length:,} are allowed"
            )
        return value

    return check


_refuse_overlong_text()


class OAuthRedirectUri(Base):
    """A redirect URI an app registered for the consent flow; requests must match one exactly
    (a loopback URI matches on any port, RFC 8252 section 7.3)."""

    __tablename__ = "oauth_redirect_uris"
    __table_args__ = (UniqueConstraint("app_id", "uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    uri: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OAuthCode(Base):
    """An authorization code issued when a user allowed an app: stored as its SHA-256 only,
    valid for a minute, redeemed once (``redeemed_at``) with the PKCE verifier."""

    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    authorization_id: Mapped[int] = mapped_column(ForeignKey("authorizations.id"), index=True)
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    code_challenge: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The events tables live in their own module; importing it here registers them wherever the
# models are (migrations, tests' truncation).
from portability.db.event_models import (  # noqa: E402, F401
    DeliveryStatus,
    Event,
    WebhookDelivery,
    WebhookEndpoint,
)
from portability.db.user_export_models import UserExport  # noqa: E402, F401
