"""Input types shared by the routers: bounded ids and text PostgreSQL can store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field, StringConstraints

__all__ = ["MAX_ID", "BodyId", "PathId", "Text"]

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
