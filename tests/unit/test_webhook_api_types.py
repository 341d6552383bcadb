"""The event types the webhook API names are the ones the outbox records."""

from __future__ import annotations

from typing import get_args

from portability.api import events, webhook_endpoints
from portability.events import EventType

SENT_ON_REQUEST_ONLY = {EventType.WEBHOOK_TEST.value}


def test_an_endpoint_may_ask_for_every_event_type_and_no_other():
    offered = set(get_args(webhook_endpoints.EventTypeName))
    assert offered == {"*"} | {t.value for t in EventType} - SENT_ON_REQUEST_ONLY


def test_events_may_be_filtered_by_every_event_type_listed():
    offered = set(get_args(events.EventTypeName))
    assert offered == {t.value for t in EventType} - SENT_ON_REQUEST_ONLY
