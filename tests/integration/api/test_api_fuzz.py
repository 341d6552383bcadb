"""Property-based fuzzing of the whole API from its OpenAPI document (schemathesis).

For every operation, generated requests (valid and invalid) must never get a 5xx, and every
answer must match the document: its status code, content type, headers and body schema.
The calls carry a working app key (and the service token for ``/internal``) on a database
holding one object of each kind, so they reach the routes' logic, not only authentication.
Destination probes are accepted without a network call: fuzzed endpoints are arbitrary hosts.

``PORTABILITY_FUZZ_EXAMPLES`` sets the examples per operation (default 8, about 200 cases in
all); ``PORTABILITY_FUZZ_LOG=path`` appends one line per case, to count a long run's cases.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.fixtures.api import SERVICE_TOKEN, make_world

pytestmark = [pytest.mark.services, pytest.mark.slow]

EXAMPLES = int(os.environ.get("PORTABILITY_FUZZ_EXAMPLES", "8"))
LOG = os.environ.get("PORTABILITY_FUZZ_LOG")
DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


@pytest.fixture
def fuzzed(make_api, moto_endpoint):
    api = make_api(api_rate_limit=1_000_000)
    world = make_world(api, moto_endpoint)
    developer = world.developer
    developer.post(
        "/v1/schedules",
        json={"grant_id": world.grant_id, "destination_id": world.destination_id, "cron": "@daily"},
    )
    developer.post(
        "/v1/transfers", json={"grant_id": world.grant_id, "destination_id": world.destination_id}
    )
    developer.post("/v1/webhook-endpoints", json={"url": "https://93.184.215.14/hooks"})
    api.client.app.state.context.probe = lambda _config: None
    return api, developer


OPERATIONS = [
    (method.upper(), path)
    for path, operations in json.loads(DOCUMENT.read_text())["paths"].items()
    for method in operations
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_gets_a_server_error_or_an_undocumented_answer(fuzzed, method, path):
    api, developer = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operation = schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    token = SERVICE_TOKEN if path.startswith("/internal") else developer.api_key
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case):
        if LOG:
            with open(LOG, "a") as log:
                log.write(f"{case.method} {case.path}\n")
        # A valid request may still name an object that does not exist (404) or refuse a
        # state (409): "valid data is accepted" does not hold for an API of object ids.
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()
