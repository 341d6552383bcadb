"""The events tables: the outbox, the apps' webhook endpoints, and each delivery's record.

``events`` is an outbox: a row is written in the transaction of the state change it reports
(``portability.events.record_event``), so the change never commits without it. The dispatcher
fans each row out to the app's endpoints that want its type (one ``webhook_deliveries`` row
each) and marks it dispatched in that same transaction; the delivery rows then say what is
still owed. The database is the source of truth; the broker only carries "delivery N is due".
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from portability.db.base import Base, BigIntPK, UTCDateTime, utcnow

__all__ = ["DeliveryStatus", "Event", "WebhookDelivery", "WebhookEndpoint"]


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Event(Base):
    """A fact an app hears about. ``id`` is the Standard Webhooks ``webhook-id`` of every
    delivery of it, so a receiver deduplicates on it.

    ``user_id`` is the platform's id of the user the event is about: it never leaves the
    system. The payload carries the app's pseudonym for it instead, computed when the event is
    rendered (the pseudonym key belongs to the processes that send, not to the transaction
    that records). ``dedup_key``, when set, makes recording the event idempotent
    (``authorization.removed`` once per grant and reason)."""

    __tablename__ = "events"
    __table_args__ = (
        # The dispatcher's scan: only undispatched rows are in the index.
        Index(
            "ix_events_undispatched",
            "occurred_at",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
        Index("ix_events_app_id_occurred_at", "app_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    user_id: Mapped[str | None] = mapped_column(String(64))
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEndpoint(Base):
    """An app's receiver: a URL, the event types it wants (``*``: all), and its signing secret
    (``whsec_``, sealed with the credential keys). After a rotation the previous secret also
    signs until ``previous_secret_until``, so a receiver can switch without losing a message."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[str] = mapped_column(Text, default="*")
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    #: Start of the current run of failed attempts (NULL after a success).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def wants(self, event_type: str) -> bool:
        types = {t.strip() for t in self.event_types.split(",")}
        return "*" in types or event_type in types


class WebhookDelivery(Base):
    """One event owed to one endpoint: attempted until it succeeds or its window closes.

    ``lease_until`` is held by the worker sending it (a second message backs off; a killed
    worker's lease lapses and the dispatcher sends it again). ``enqueued_at`` says when a
    message for it was last published."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
