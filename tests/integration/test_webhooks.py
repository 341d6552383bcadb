"""Webhook endpoints and deliveries: the network policy at registration and at send time,
secret rotation, retries until the window closes, and the developer-facing functions."""

from __future__ import annotations

import dataclasses
import socket
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from portability import registry, webhooks
from portability.db.base import utcnow
from portability.db.models import AppStatus
from portability.errors import EndpointRefusedError, NotFoundError, ValidationError
from portability.events.dispatch import dispatch_events
from portability.events.send import attempt_delivery
from portability.runtime import Runtime
from tests.fixtures.workers import wait_until

pytestmark = pytest.mark.services


@pytest.fixture
def runtime(pg_url, test_settings):
    settings = test_settings.model_copy(update={"database_url": SecretStr(pg_url)})
    runtime = Runtime.from_settings(settings)
    yield runtime
    runtime.close()


def new_app(runtime, name: str = "Acme") -> int:
    with runtime.sessions.begin() as session:
        app, _ = registry.create_app(
            session, name=name, contact_email="dev@acme.test", use_case="backs up user data"
        )
        registry.set_app_status(session, app.id, AppStatus.APPROVED)
        return app.id


def new_endpoint(runtime, app_id: int, url: str, **kwargs) -> tuple[int, str]:
    with runtime.sessions.begin() as session:
        view, secret = webhooks.create_endpoint(
            session,
            runtime.box,
            app_id=app_id,
            url=url,
            policy=runtime.settings.endpoint_policy,
            **kwargs,
        )
        return view.id, secret


def send_test(runtime, app_id: int, endpoint_id: int) -> int:
    with runtime.sessions.begin() as session:
        return webhooks.send_test_event(session, app_id, endpoint_id)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://[::1]/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://metadata.google.internal/hooks",
        "http://example.com/hooks",
    ],
)
def test_private_loopback_metadata_and_plain_http_urls_are_refused_at_registration(runtime, url):
    app_id = new_app(runtime)
    with runtime.sessions.begin() as session, pytest.raises(EndpointRefusedError):
        webhooks.create_endpoint(session, runtime.box, app_id=app_id, url=url)


def test_a_url_refused_at_send_time_is_never_contacted(runtime, receiver):
    app_id = new_app(runtime)
    endpoint_id, _ = new_endpoint(runtime, app_id, receiver.url)  # allowed when registered
    strict = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(
            update={"allow_private_endpoints": False, "allow_http_endpoints": False}
        ),
    )
    delivery_id = send_test(runtime, app_id, endpoint_id)

    outcome = attempt_delivery(strict, delivery_id)

    assert outcome.status == "retry"
    assert receiver.requests == []
    with runtime.sessions() as session:
        (shown,) = webhooks.list_deliveries(session, app_id, endpoint_id)
    assert shown.last_error is not None and "refused by the network policy" in shown.last_error


class SwitchingDns:
    """``socket.getaddrinfo`` for one name, answering what the test says (the developer
    controls their DNS); every other name resolves as usual."""

    def __init__(self, monkeypatch, name: str, address: str) -> None:
        self.name, self.address = name, address
        real = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            if host == self.name:
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.address, 443))]
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.9", "169.254.169.254"], ids=["loopback", "private", "metadata"]
)
def test_a_name_turning_internal_after_registration_is_refused_at_send_time_setting_off(
    runtime, monkeypatch, address
):
    strict = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(
            update={"allow_private_endpoints": False, "allow_http_endpoints": False}
        ),
    )
    dns = SwitchingDns(monkeypatch, "hooks.acme.test", "93.184.215.14")
    app_id = new_app(strict)
    endpoint_id, _ = new_endpoint(strict, app_id, "https://hooks.acme.test/in")  # public now
    delivery_id = send_test(strict, app_id, endpoint_id)
    dns.address = address

    outcome = attempt_delivery(strict, delivery_id)

    assert outcome.status == "retry" and outcome.status_code is None
    with strict.sessions() as session:
        (shown,) = webhooks.list_deliveries(session, app_id, endpoint_id)
    assert "refused by the network policy" in (shown.last_error or "")
    assert "does not resolve to a public internet address" in (shown.last_error or "")


def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(runtime, receiver):
    app_id = new_app(runtime)
    endpoint_id, old = new_endpoint(runtime, app_id, receiver.url)
    with runtime.sessions.begin() as session:
        new = webhooks.rotate_secret(
            session, runtime.box, app_id, endpoint_id, overlap_seconds=3600
        )
    attempt_delivery(runtime, send_test(runtime, app_id, endpoint_id))
    with runtime.engine.begin() as conn:  # the overlap ends
        conn.execute(
            text("UPDATE webhook_endpoints SET previous_secret_until = :t"),
            {"t": utcnow() - timedelta(seconds=1)},
        )
    attempt_delivery(runtime, send_test(runtime, app_id, endpoint_id))

    during, after = receiver.wait_for(2)
    assert (during.verifies_with(old), during.verifies_with(new)) == (True, True)
    assert (after.verifies_with(old), after.verifies_with(new)) == (False, True)


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_its_delivery_failed(
    runtime, receiver
):
    runtime = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(
            update={
                "webhook_retry_base_seconds": 0.1,
                "webhook_retry_jitter": 0.0,
                "webhook_retry_window_seconds": 0.6,
            }
        ),
    )
    receiver.respond(*[500] * 100)
    app_id = new_app(runtime)
    endpoint_id, _ = new_endpoint(runtime, app_id, receiver.url)
    delivery_id = send_test(runtime, app_id, endpoint_id)

    wait_until(
        lambda: attempt_delivery(runtime, delivery_id).status == "failed",
        timeout=10,
        interval=0.05,
        what="the delivery to give up",
    )

    with runtime.sessions() as session:
        endpoint = webhooks.get_endpoint(session, app_id, endpoint_id)
        (delivery,) = webhooks.list_deliveries(session, app_id, endpoint_id)
    assert endpoint.is_disabled and "fix the receiver" in (endpoint.disabled_reason or "")
    assert (delivery.status, delivery.last_status_code) == ("failed", 500)
    assert delivery.attempts == len(receiver.requests) >= 3


def test_deliveries_show_status_attempts_response_code_and_timing(runtime, receiver):
    receiver.respond(503)
    app_id = new_app(runtime)
    endpoint_id, _ = new_endpoint(runtime, app_id, receiver.url)
    delivery_id = send_test(runtime, app_id, endpoint_id)
    assert attempt_delivery(runtime, delivery_id).status == "retry"
    with runtime.engine.begin() as conn:  # the backoff has passed
        conn.execute(text("UPDATE webhook_deliveries SET next_attempt_at = :t"), {"t": utcnow()})
    assert attempt_delivery(runtime, delivery_id).status == "succeeded"

    with runtime.sessions() as session:
        (shown,) = webhooks.list_deliveries(session, app_id, endpoint_id)
    assert (shown.status, shown.attempts, shown.last_status_code, shown.last_error) == (
        "succeeded",
        2,
        204,
        None,
    )
    assert shown.last_duration_ms is not None and shown.finished_at is not None


def test_a_redelivered_event_carries_the_same_webhook_id(runtime, receiver):
    app_id = new_app(runtime)
    new_endpoint(runtime, app_id, receiver.url)
    sent: list[int] = []
    dispatch_events(runtime.settings, runtime.sessions, sent.extend)  # nothing yet
    with runtime.sessions.begin() as session:
        registry.add_user(session, user_id="u1", country="DE")
        registry.grant(
            session,
            user_id="u1",
            app_id=app_id,
            categories="posts",
            access="ongoing",
            eligible_countries={"DE"},
        )
    dispatch_events(runtime.settings, runtime.sessions, sent.extend)
    (first,) = sent
    attempt_delivery(runtime, first)
    event_id = receiver.wait_for(1)[0].id
    with runtime.sessions.begin() as session:
        (again,) = webhooks.redeliver(session, app_id, event_id)
    attempt_delivery(runtime, again)

    assert [r.id for r in receiver.wait_for(2)] == [event_id, event_id]


def test_another_apps_endpoints_and_events_are_not_found(runtime, receiver):
    mine, theirs = new_app(runtime, "Mine"), new_app(runtime, "Theirs")
    endpoint_id, _ = new_endpoint(runtime, theirs, receiver.url)
    with runtime.sessions.begin() as session:
        delivery_id = webhooks.send_test_event(session, theirs, endpoint_id)
        event_id = session.execute(
            text("SELECT event_id FROM webhook_deliveries WHERE id = :i"), {"i": delivery_id}
        ).scalar_one()
    with runtime.sessions() as session:
        for call in (
            lambda: webhooks.get_endpoint(session, mine, endpoint_id),
            lambda: webhooks.list_deliveries(session, mine, endpoint_id),
            lambda: webhooks.redeliver(session, mine, event_id),
            lambda: webhooks.send_test_event(session, mine, endpoint_id),
            lambda: webhooks.delete_endpoint(session, mine, endpoint_id),
        ):
            with pytest.raises(NotFoundError):
                call()
        assert webhooks.list_endpoints(session, mine) == []


def test_an_endpoint_refuses_unknown_event_types(runtime, receiver):
    app_id = new_app(runtime)
    with (
        runtime.sessions.begin() as session,
        pytest.raises(ValidationError, match=r"run\.exploded"),
    ):
        webhooks.create_endpoint(
            session,
            runtime.box,
            app_id=app_id,
            url=receiver.url,
            event_types=["run.exploded"],
            policy=runtime.settings.endpoint_policy,
        )


def test_an_endpoint_receives_only_the_event_types_it_wants(runtime, make_receiver):
    app_id = new_app(runtime)
    wants_runs, wants_grants = make_receiver(), make_receiver()
    new_endpoint(runtime, app_id, wants_runs.url, event_types=["run.failed"])
    new_endpoint(runtime, app_id, wants_grants.url, event_types=["authorization.created"])
    with runtime.sessions.begin() as session:
        registry.add_user(session, user_id="u1", country="DE")
        registry.grant(
            session,
            user_id="u1",
            app_id=app_id,
            categories="posts",
            access="ongoing",
            eligible_countries={"DE"},
        )
    sent: list[int] = []
    dispatch_events(runtime.settings, runtime.sessions, sent.extend)
    for delivery_id in sent:
        attempt_delivery(runtime, delivery_id)

    assert (len(wants_runs.requests), len(wants_grants.wait_for(1))) == (0, 1)


def test_giving_up_disabling_and_skipping_a_disabled_endpoint_are_counted_apart(runtime, receiver):
    from portability.metrics import Metrics

    runtime = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(
            update={"webhook_retry_jitter": 0.0, "webhook_retry_window_seconds": 0.1}
        ),
    )
    metrics = Metrics()
    receiver.respond(500)
    app_id = new_app(runtime)
    endpoint_id, _ = new_endpoint(runtime, app_id, receiver.url)
    metrics.observe_delivery(attempt_delivery(runtime, send_test(runtime, app_id, endpoint_id)))
    metrics.observe_delivery(attempt_delivery(runtime, send_test(runtime, app_id, endpoint_id)))

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("portability_webhook_attempts_total", outcome="failed") == 1.0
    assert value("portability_webhook_endpoints_disabled_total") == 1.0
    assert value("portability_webhook_attempts_total", outcome="endpoint_disabled") == 1.0
    assert value("portability_webhook_attempt_seconds_count") == 1.0  # only one POST
    assert len(receiver.requests) == 1
