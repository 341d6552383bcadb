"""JSON as a verifier must read it: one meaning per document, or a refusal.

JSON lets an object name a member twice, and parsers disagree about which one counts (orjson
and pydantic keep the last, others the first). A document that a signature, a hash or a check
covers must mean the same to every reader, so objects with a duplicate member are refused
here, at any depth. orjson decides validity (strict RFC 8259: no NaN, no lone surrogates);
the standard library's hook only looks for duplicates.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["DuplicateMemberError", "StrictJSONError", "loads_strict", "refuse_duplicates"]


class StrictJSONError(ValueError):
    """Not JSON, or JSON with more than one meaning."""


class DuplicateMemberError(StrictJSONError):
    pass


def _pairs_recorder(found: list[str | None]) -> Any:
    """An ``object_pairs_hook`` noting, per object as it closes, a repeated name or ``None``."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        repeated = None
        if len(result) != len(pairs):
            seen: set[str] = set()
            for name, _ in pairs:
                if name in seen:
                    repeated = name
                    break
                seen.add(name)
        found.append(repeated)
        return result

    return hook


def refuse_duplicates(data: bytes | str, *, top_level_only: bool = False) -> None:
    """Raise ``DuplicateMemberError`` when an object of ``data`` (valid JSON) repeats a name:
    any object, or with ``top_level_only`` the outermost one (which closes last)."""
    found: list[str | None] = []
    try:
        json.loads(data, object_pairs_hook=_pairs_recorder(found))
    except (ValueError, RecursionError) as exc:
        raise StrictJSONError(f"not valid JSON: {exc}") from None
    checked = found[-1:] if top_level_only else found
    for name in checked:
        if name is not None:
            raise DuplicateMemberError(f"member {name!r} appears twice in one object")


def loads_strict(data: bytes | str) -> Any:
    """Parse ``data``; ``StrictJSONError`` when it is invalid or repeats a member anywhere."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StrictJSONError(f"not valid JSON: {exc}") from None
    refuse_duplicates(data)
    return value
