"""Input types shared by the routers: bounded ids and text PostgreSQL can store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import AfterValidator, Field, StringConstraints

from portability.errors import ValidationError

__all__ = ["MAX_ID", "BodyId", "PathId", "Text", "refuse_unknown_query"]

#: The largest id a 32-bit INTEGER column holds: a larger one is simply "not found".
MAX_ID = 2**31 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def Text(max_length: int, min_length: int = 0) -> object:  # noqa: N802 - reads as a type
    """A string of at most ``max_length`` characters, without NUL (PostgreSQL refuses it)."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(_no_nul),
    ]


PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]


_KNOWN_QUERY: dict[int, frozenset[str]] = {}


async def refuse_unknown_query(request: Request) -> None:
    """Refuse query parameters a route does not take: a misspelt filter (``?stauts=failed``)
    would otherwise quietly answer with everything."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _KNOWN_QUERY.get(id(route))
    if known is None:
        known = frozenset(_query_names(route.dependant))
        _KNOWN_QUERY[id(route)] = known
    for name in request.query_params:
        if name not in known:
            takes = ", ".join(sorted(known)) or "none"
            raise ValidationError(
                f"unknown query parameter {name!r}: this endpoint takes {takes}", field=name
            )


def _query_names(dependant: Dependant) -> list[str]:
    names = [param.alias for param in dependant.query_params]
    for sub in dependant.dependencies:
        names += _query_names(sub)
    return names
