"""Reading request parameters strictly: every value kept, so repeats can be refused."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from portability.errors import ValidationError

__all__ = ["MAX_FORM_BYTES", "first", "query_params", "read_form", "safe_next"]

MAX_FORM_BYTES = 64 * 1024
Params = dict[str, list[str]]


async def read_form(request: Request) -> Params:
    """An ``application/x-www-form-urlencoded`` body as name -> values."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ValidationError("the form is too large")
    if not body:
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ValidationError("send the form as application/x-www-form-urlencoded")
    params: Params = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return params


def query_params(request: Request) -> Params:
    params: Params = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


def first(params: Params, name: str) -> str | None:
    values = params.get(name) or []
    return values[0] if values else None


def safe_next(value: str | None, default: str) -> str:
    """A path on this site to go to after signing in; anything else (another host, a scheme,
    ``//host``, a backslash) falls back to ``default``: no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 32 for ch in value):
        return default
    return value
