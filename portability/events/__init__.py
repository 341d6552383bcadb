"""Events: facts developers hear about, recorded in the outbox and delivered as signed webhooks.

- ``outbox.record_event`` — add an event in the caller's transaction (the only write a producer
  makes); ``producers`` — what each state change records;
- ``payload`` — the Standard Webhooks payload and signatures of an event;
- ``dispatch`` — fan undelivered events out to endpoints and re-send what the broker lost;
- ``send`` — one delivery attempt: policy check, signed POST, backoff or done.

Endpoints and the developer-facing functions are in ``portability.webhooks``.
"""

from __future__ import annotations

from portability.events._types import EventType, RemovalReason, ScheduleDisabledReason
from portability.events.outbox import new_event_id, record_event

__all__ = [
    "EventType",
    "RemovalReason",
    "ScheduleDisabledReason",
    "new_event_id",
    "record_event",
]
