"""The four data categories a user can grant, and who may grant at all."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from portability.errors import ValidationError

__all__ = ["ALL_CATEGORIES", "EEA_COUNTRIES", "Category", "format_categories", "parse_categories"]


class Category(StrEnum):
    PROFILE = "profile"
    POSTS = "posts"
    ACTIVITY = "activity"
    DIRECT_MESSAGES = "direct_messages"


ALL_CATEGORIES: frozenset[Category] = frozenset(Category)

#: The 30 countries of the European Economic Area (EU 27 + Iceland, Liechtenstein, Norway).
EEA_COUNTRIES: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)


def parse_categories(value: str | Iterable[str]) -> frozenset[Category]:
    """Parse ``"posts,profile"`` or an iterable; ``all`` expands to every category.

    Raises ``ValidationError`` naming the unknown category.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        raise ValidationError("no categories given: name at least one of " + _choices())
    result: set[Category] = set()
    for name in names:
        if name == "all":
            result.update(Category)
            continue
        try:
            result.add(Category(name))
        except ValueError:
            raise ValidationError(
                f"unknown category {name!r}: choose from {_choices()} or 'all'"
            ) from None
    return frozenset(result)


def format_categories(categories: Iterable[Category | str]) -> str:
    """The stored form: sorted, comma-separated, so equal sets compare equal as text."""
    return ",".join(sorted(str(c) for c in categories))


def _choices() -> str:
    return ", ".join(c.value for c in Category)
