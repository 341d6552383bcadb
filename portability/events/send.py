"""One delivery attempt: claim it, check the endpoint, sign, POST, record what happened.

Safe to call twice for one delivery, concurrently or not: the attempt is claimed by a guarded
``UPDATE`` (pending, due, not leased), so a duplicate message backs off, and a worker killed
mid-attempt leaves a lease that lapses, after which the dispatcher sends it again. Retries wait
``base * 2**(attempt-1)`` seconds (at most ``max``), lengthened by up to ``jitter`` of that,
until the delivery's window (72 h by default) would close; then it is marked failed, and an
endpoint that failed every attempt since the delivery was created is disabled.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from portability.crypto import CredentialBox
from portability.db.base import utcnow
from portability.db.engine import relax_durability
from portability.db.event_models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from portability.errors import EndpointRefusedError, ValidationError
from portability.events._http import PostResult, post
from portability.events.payload import headers_for, render
from portability.settings import Settings

__all__ = ["MAX_COUNTDOWN_SECONDS", "DeliveryOutcome", "EventsRuntime", "attempt_delivery"]

log = logging.getLogger("portability.events")

#: A retry due within this many seconds is published with a countdown by the worker; a later
#: one is left to the dispatcher, which sends it when due (no message waits for hours).
MAX_COUNTDOWN_SECONDS = 300.0
#: An attempt's lease: three timeouts (connect, send, read) and a margin for the database.
#: A killed worker's attempt is taken over once it lapses; one that outlives it (a receiver
#: dripping its answer) may be sent twice, which at-least-once delivery allows.
_LEASE_MARGIN_SECONDS = 2.0


class EventsRuntime(Protocol):
    """What sending needs from a process (``portability.runtime.Runtime`` has it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def box(self) -> CredentialBox: ...


@dataclass(frozen=True)
class DeliveryOutcome:
    """``status``: succeeded, retry (publish again in ``retry_in`` seconds if set), failed,
    or dropped (not claimable: done, leased, or a duplicate).

    For metrics (``Metrics.observe_delivery``): ``result`` names what the attempt came to
    (delivered, retry, failed, endpoint_disabled; None when nothing was attempted),
    ``attempt_seconds`` how long the POST took, ``delay_seconds`` the time from the event to
    its successful delivery, and ``disabled_endpoint`` whether this attempt disabled it."""

    delivery_id: int
    status: str
    retry_in: float | None = None
    status_code: int | None = None
    result: str | None = None
    attempt_seconds: float | None = None
    delay_seconds: float | None = None
    disabled_endpoint: bool = False


def retry_delay(attempts: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    base: float = settings.webhook_retry_base_seconds * 2.0 ** max(0, attempts - 1)
    plain = min(settings.webhook_retry_max_seconds, base)
    jitter: float = (rng or random).random()
    return float(plain * (1 + settings.webhook_retry_jitter * jitter))


def attempt_delivery(
    runtime: EventsRuntime, delivery_id: int, *, now: datetime | None = None
) -> DeliveryOutcome:
    settings = runtime.settings
    now = now or utcnow()
    lease = timedelta(seconds=settings.webhook_timeout_seconds * 3 + _LEASE_MARGIN_SECONDS)
    with runtime.sessions.begin() as session:
        # Bookkeeping a database crash may lose: a lost claim is claimed again once its lease
        # lapses, a lost result means one more attempt (receivers deduplicate on the id).
        relax_durability(session)
        claimed = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                WebhookDelivery.lease_until.is_(None) | (WebhookDelivery.lease_until < now),
            )
            .values(lease_until=now + lease, attempts=WebhookDelivery.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return _not_claimed(session, delivery_id, now)
        delivery, event, endpoint = session.execute(
            select(WebhookDelivery, Event, WebhookEndpoint)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id == delivery_id)
            .execution_options(populate_existing=True)
        ).one()
        if endpoint.is_disabled:
            _finish(delivery, DeliveryStatus.FAILED, now, error="the endpoint is disabled")
            return DeliveryOutcome(
                delivery_id, DeliveryStatus.FAILED.value, result="endpoint_disabled"
            )
        url, attempts, event_id = endpoint.url, delivery.attempts, event.id
        occurred_at = event.occurred_at
        was_failing = endpoint.failing_since is not None
        body = render(event, settings.resolved_pseudonym_key())
        signing = _signing_secrets(runtime.box, endpoint, now)
    sent_at = utcnow()
    try:
        result = post(
            url,
            body,
            headers_for(event_id, body, signing, sent_at),
            timeout=settings.webhook_timeout_seconds,
            policy=settings.endpoint_policy,
        )
    except EndpointRefusedError as exc:
        result = PostResult(None, 0, f"refused by the network policy: {exc}")
    with runtime.sessions.begin() as session:
        relax_durability(session)
        if result.is_success:  # the common case, in one statement (two if it was failing)
            outcome = _record_success(session, delivery_id, result, sent_at, was_failing)
            if outcome.result == "delivered":
                delay = (utcnow() - occurred_at).total_seconds()
                outcome = replace(outcome, delay_seconds=max(0.0, delay))
            return outcome
        return _record(session, settings, delivery_id, attempts, result, sent_at)


def _not_claimed(session: Session, delivery_id: int, now: datetime) -> DeliveryOutcome:
    """An early message (a countdown that fired a little before ``next_attempt_at``) comes
    back when due; any other is a duplicate, or for a delivery another worker holds."""
    row = session.execute(
        select(
            WebhookDelivery.status, WebhookDelivery.next_attempt_at, WebhookDelivery.lease_until
        ).where(WebhookDelivery.id == delivery_id)
    ).one_or_none()
    if (
        row is not None
        and row.status == DeliveryStatus.PENDING
        and row.next_attempt_at > now
        and row.lease_until is None
    ):
        wait = (row.next_attempt_at - now).total_seconds()
        if wait <= MAX_COUNTDOWN_SECONDS:
            return DeliveryOutcome(delivery_id, "early", retry_in=wait)
    return DeliveryOutcome(delivery_id, "dropped")


def _signing_secrets(box: CredentialBox, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    found = [box.open(endpoint.secret_encrypted)["secret"]]
    if (
        endpoint.previous_secret_encrypted is not None
        and endpoint.previous_secret_until is not None
        and endpoint.previous_secret_until > now
    ):
        try:
            found.append(box.open(endpoint.previous_secret_encrypted)["secret"])
        except ValidationError:  # sealed under a retired encryption key: the overlap is over
            log.warning("webhook endpoint %s: its previous secret no longer opens", endpoint.id)
    return found


def _record_success(
    session: Session, delivery_id: int, result: PostResult, sent_at: datetime, was_failing: bool
) -> DeliveryOutcome:
    done = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.SUCCEEDED.value,
            finished_at=utcnow(),
            lease_until=None,
            last_error=None,
            last_attempt_at=sent_at,
            last_status_code=result.status,
            last_duration_ms=result.duration_ms,
        )
        .returning(WebhookDelivery.endpoint_id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if done is None:
        return DeliveryOutcome(delivery_id, "dropped")  # redelivered or removed meanwhile
    if was_failing:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == done)
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
    return DeliveryOutcome(
        delivery_id,
        DeliveryStatus.SUCCEEDED.value,
        None,
        result.status,
        result="delivered",
        attempt_seconds=result.duration_ms / 1000,
    )


def _record(
    session: Session,
    settings: Settings,
    delivery_id: int,
    attempts: int,
    result: PostResult,
    sent_at: datetime,
) -> DeliveryOutcome:
    delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
    if delivery is None or endpoint is None or delivery.status != DeliveryStatus.PENDING:
        return DeliveryOutcome(delivery_id, "dropped")  # redelivered or removed meanwhile
    now = utcnow()
    delivery.last_attempt_at = sent_at
    delivery.last_status_code = result.status
    delivery.last_duration_ms = result.duration_ms
    error = result.error or f"the endpoint answered HTTP {result.status}"
    if endpoint.failing_since is None:
        endpoint.failing_since = sent_at
    delay = timedelta(seconds=retry_delay(attempts, settings))
    window = timedelta(seconds=settings.webhook_retry_window_seconds)
    attempt_seconds, disabled = result.duration_ms / 1000, False
    if now + delay > delivery.created_at + window:
        gave_up = f"gave up after {attempts} attempts: {error}"
        _finish(delivery, DeliveryStatus.FAILED, now, error=gave_up)
        # Failing since a window before the attempt we will not make: the whole window.
        if endpoint.failing_since <= now + delay - window and not endpoint.is_disabled:
            endpoint.is_disabled = True
            endpoint.disabled_reason = (
                f"every attempt failed for {settings.webhook_retry_window_seconds / 3600:g} "
                f"hours (last: {error}); fix the receiver, then enable the endpoint again"
            )
            log.warning("webhook endpoint %s disabled: %s", endpoint.id, error)
            disabled = True
        return DeliveryOutcome(
            delivery_id,
            DeliveryStatus.FAILED.value,
            None,
            result.status,
            result="failed",
            attempt_seconds=attempt_seconds,
            disabled_endpoint=disabled,
        )
    delivery.next_attempt_at = now + delay
    delivery.last_error = error
    delivery.lease_until = None
    seconds = delay.total_seconds()
    publish = seconds <= MAX_COUNTDOWN_SECONDS
    if publish:  # the caller publishes it with this countdown: the dispatcher leaves it alone
        delivery.enqueued_at = delivery.next_attempt_at
    return DeliveryOutcome(
        delivery_id,
        "retry",
        seconds if publish else None,
        result.status,
        result="retry",
        attempt_seconds=attempt_seconds,
    )


def _finish(
    delivery: WebhookDelivery, status: DeliveryStatus, now: datetime, *, error: str | None
) -> None:
    delivery.status = status.value
    delivery.finished_at = now
    delivery.lease_until = None
    delivery.last_error = error
