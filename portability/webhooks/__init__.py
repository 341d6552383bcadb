"""Webhook endpoints and the developer-facing functions over events and deliveries.

Plain functions for the developer API (and the CLI): each takes a session and the caller's
``app_id``, never commits, and treats another app's endpoint, event or delivery as not found
(isolation in one place: every query here is filtered by ``app_id``). A function that creates
deliveries leaves them ``pending`` with no message: the caller publishes them after its commit
(``workers.events.enqueue_deliveries``), or the dispatcher does within a second or so.

An endpoint's URL is checked with the endpoint policy at registration (``policy``, from
``Settings.endpoint_policy``) and again before every attempt. Its signing secret
(``whsec_...``) is returned once, by ``create_endpoint`` and ``rotate_secret``, and stored
sealed with the credential keys.
"""

from __future__ import annotations

from portability.webhooks._endpoints import (
    EndpointView,
    create_endpoint,
    delete_endpoint,
    get_endpoint,
    list_endpoints,
    rotate_secret,
    set_endpoint_enabled,
    update_endpoint,
)
from portability.webhooks._history import (
    DeliveryView,
    EventView,
    deliveries_by_id,
    get_event,
    list_deliveries,
    list_events,
    mark_enqueued,
    redeliver,
    send_test_event,
)

__all__ = [
    "DeliveryView",
    "EndpointView",
    "EventView",
    "create_endpoint",
    "delete_endpoint",
    "deliveries_by_id",
    "get_endpoint",
    "get_event",
    "list_deliveries",
    "list_endpoints",
    "list_events",
    "mark_enqueued",
    "redeliver",
    "rotate_secret",
    "send_test_event",
    "set_endpoint_enabled",
    "update_endpoint",
]
