"""The event types and the reason codes their bodies carry: the words developers code against."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventType", "RemovalReason", "ScheduleDisabledReason"]


class EventType(StrEnum):
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    STREAM_REPLAYED = "stream.replayed"
    AUTHORIZATION_CREATED = "authorization.created"
    AUTHORIZATION_REMOVED = "authorization.removed"
    SCHEDULE_DISABLED = "schedule.disabled"
    DESTINATION_FAILING = "destination.failing"
    #: Sent only by "send a test event" to one endpoint.
    WEBHOOK_TEST = "webhook.test"


class RemovalReason(StrEnum):
    """Why an authorization no longer allows transfers (``authorization.removed``)."""

    USER_REVOKED = "user_revoked"
    EXPIRED = "expired"
    SINGLE_USE_SPENT = "single_use_spent"
    APP_SUSPENDED = "app_suspended"
    USER_NOT_ELIGIBLE = "user_not_eligible"
    USER_DELETED = "user_deleted"


class ScheduleDisabledReason(StrEnum):
    """Why a schedule will not run again (``schedule.disabled``)."""

    AUTHORIZATION_REVOKED = "authorization_revoked"
    AUTHORIZATION_EXPIRED = "authorization_expired"
    #: The grant expires before the schedule's next fire: the run just created was its last.
    AUTHORIZATION_EXPIRING = "authorization_expiring"
    SINGLE_USE_SPENT = "single_use_spent"
    APP_SUSPENDED = "app_suspended"
    APP_REJECTED = "app_rejected"
    APP_NOT_APPROVED = "app_not_approved"
    INVALID_SCHEDULE = "invalid_schedule"
