"""The checked-in OpenAPI document is the one the code serves (``make openapi`` rewrites it)."""

from __future__ import annotations

import json
from pathlib import Path

from portability.api.openapi import render

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_matches_the_code():
    assert json.loads(CHECKED_IN.read_text()) == json.loads(render()), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


def test_every_refusal_is_documented_as_problem_json():
    document = json.loads(render())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )
