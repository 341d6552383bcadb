"""An event as its receivers see it: the Standard Webhooks payload, headers and signatures.

The payload is ``{"type", "timestamp", "data"}``; ``data`` is the event's body plus, for an
event about a user, ``user``: the app's pseudonym of that user (never the platform's id). The
headers are ``webhook-id`` (the event id: the same on every attempt and every redelivery, so
receivers deduplicate on it), ``webhook-timestamp`` (seconds, of this attempt) and
``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per active secret, separated by spaces,
as the ``standardwebhooks`` package signs and verifies them.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from portability.db.event_models import Event
from portability.pseudonyms import pseudonym

__all__ = ["headers_for", "new_secret", "payload_of", "render"]


def new_secret() -> str:
    """A signing secret in the Standard Webhooks format: ``whsec_`` and base64 of 24 bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def payload_of(event: Event, pseudonym_key: bytes) -> dict[str, Any]:
    data = dict(event.body)
    if event.user_id is not None:
        data["user"] = pseudonym(pseudonym_key, event.app_id, event.user_id)
    return {
        "type": event.type,
        "timestamp": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def render(event: Event, pseudonym_key: bytes) -> bytes:
    """The request body: compact JSON, the bytes that are signed."""
    return orjson.dumps(payload_of(event, pseudonym_key))


def headers_for(
    event_id: str, body: bytes, signing_secrets: Sequence[str], now: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt, signed with every active secret."""
    signatures = " ".join(
        Webhook(secret).sign(msg_id=event_id, timestamp=now, data=body)
        for secret in signing_secrets
    )
    return {
        "content-type": "application/json",
        "user-agent": "portability-webhooks/1",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }
