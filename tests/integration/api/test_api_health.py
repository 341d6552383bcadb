"""``/healthz`` and ``/readyz``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.services


def test_healthz_answers_while_the_process_is_up(api):
    assert api.client.get("/healthz").json() == {"status": "ok", "checks": {}}


def test_readyz_is_ok_when_the_database_and_the_broker_answer(make_api, redis_url):
    response = make_api(broker_url=redis_url).client.get("/readyz")
    assert (response.status_code, response.json()["checks"]) == (
        200,
        {"database": "ok", "broker": "ok"},
    )


def test_readyz_is_503_naming_the_broker_when_it_does_not_answer(make_api):
    response = make_api(broker_url="redis://127.0.0.1:19498/0").client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["broker"].startswith("error")
