"""Errors as RFC 9457 problem details: one table from the error tree to status and type.

Every refusal answers ``application/problem+json`` with a stable ``type`` (the families below;
a client branches on it, never on ``detail``), the ``status``, a ``detail`` that says what to
fix and, when known, the ``field`` at fault. Nothing else leaves: an unexpected exception is
logged here with its traceback and answered as a bare ``internal-error``, so no stack trace, SQL
or secret reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from portability.errors import (
    AuthenticationError,
    ConflictError,
    ConsentError,
    DestinationError,
    NotFoundError,
    PortabilityError,
    RateLimitedError,
    ValidationError,
)

__all__ = [
    "PROBLEM_RESPONSES",
    "AppNotApprovedError",
    "Problem",
    "install",
    "problem_media_type",
]

log = logging.getLogger("portability.api")
PROBLEM_TYPE = "https://portability.example/problems/"
MEDIA_TYPE = "application/problem+json"


class AppNotApprovedError(PortabilityError):
    """The key is good but its app may not call this yet (pending) or any more."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="Stable URI of the kind of problem; branch on this.")
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to do about it.")
    field: str | None = Field(default=None, description="The request field at fault, if any.")
    errors: list[dict[str, str]] | None = Field(
        default=None, description="Every invalid field, for a request that failed validation."
    )


#: (family, status, type slug, title); the first match wins, so subclasses come first.
_TABLE: list[tuple[type[BaseException], int, str, str]] = [
    (AuthenticationError, 401, "unauthorized", "Missing or invalid credentials"),
    (RateLimitedError, 429, "rate-limited", "Too many requests"),
    (NotFoundError, 404, "not-found", "Not found"),
    (ConflictError, 409, "conflict", "Conflict"),
    (ConsentError, 403, "consent-refused", "Refused by consent rules"),
    (DestinationError, 422, "destination-test-failed", "The destination cannot be written to"),
    (ValidationError, 422, "validation-error", "Invalid request"),
    (PortabilityError, 400, "bad-request", "Bad request"),
]

_HTTP = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE + slug,
        title=title,
        status=status,
        detail=detail,
        field=field,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status, headers=headers, media_type=MEDIA_TYPE
    )


def _from_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, AppNotApprovedError):
        return problem(403, exc.kind, "App not approved", str(exc))
    for family, status, slug, title in _TABLE:
        if isinstance(exc, family):
            headers: dict[str, str] = {}
            if isinstance(exc, AuthenticationError):
                headers["WWW-Authenticate"] = "Bearer"
            if isinstance(exc, RateLimitedError):
                headers["Retry-After"] = str(exc.retry_after)
            field = exc.field if isinstance(exc, ValidationError) else None
            return problem(status, slug, title, str(exc), field=field, headers=headers)
    raise AssertionError("PortabilityError is the last row")  # pragma: no cover


def _field_name(location: tuple[Any, ...]) -> str:
    """``("body", "categories", "literal['all']")`` -> ``categories``: the request's own
    names, without pydantic's tags for the union branch it tried."""
    parts: list[str] = []
    for part in location[1:] if location[:1] and location[0] in _SOURCES else location:
        if isinstance(part, int):
            parts.append(str(part))
        elif isinstance(part, str) and part.replace("-", "_").isidentifier():
            parts.append(part)
        else:
            break
    return ".".join(parts) or (str(location[0]) if location else "body")


_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def _from_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_name(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem(
        422,
        "validation-error",
        "Invalid request",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=errors,
    )


def _from_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # a body that is not JSON at all: one more invalid request
        detail = "body: the request body is not valid JSON in UTF-8"
        return problem(422, "validation-error", "Invalid request", detail, field="body")
    slug, title = _HTTP.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(exc.status_code, slug, title, detail, headers=dict(exc.headers or {}))


def _from_anything(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        500, "internal-error", "Internal error", "the server failed; the error was logged"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(PortabilityError, _from_error)
    app.add_exception_handler(RequestValidationError, _from_validation)
    app.add_exception_handler(StarletteHTTPException, _from_http)
    app.add_exception_handler(Exception, _from_anything)


def _doc(description: str) -> dict[str, Any]:
    # ``model`` registers the schema under application/json; ``problem_media_type`` moves it.
    return {"model": Problem, "description": description}


def problem_media_type(document: dict[str, Any]) -> dict[str, Any]:
    """Declare every problem response as ``application/problem+json``, as it is served."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if (
                    status.startswith(("4", "5"))
                    and content.get("application/json", {}).get("schema") == ref
                ):
                    response["content"] = {MEDIA_TYPE: {"schema": ref}}
    return document


#: The refusals every authenticated route can answer, for its OpenAPI document.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("Missing, unknown, expired or revoked API key."),
    403: _doc("The app is awaiting review, rejected or suspended; or consent refuses."),
    404: _doc("No such object for this app."),
    409: _doc("The object's state does not allow this."),
    422: _doc("The request is invalid; `field` names what to fix."),
    429: _doc("Over the app's rate limit; retry after `Retry-After` seconds."),
}
