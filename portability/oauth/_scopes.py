"""OAuth scopes: ``portability.<category>.<access>``, e.g. ``portability.directmessages.single``.

A request names one or more categories and one access for all of them: a grant is one set of
categories with one access, so ``portability.posts.single portability.profile.ongoing`` is
refused rather than silently split into two grants.
"""

from __future__ import annotations

from dataclasses import dataclass

from portability.categories import Category, format_categories, parse_categories
from portability.db.models import Access
from portability.errors import OAuthError

__all__ = ["ScopeRequest", "parse_scope", "scope_for"]

_PREFIX = "portability."
#: Scope words for categories (no underscore in scope tokens, as the platforms' own scopes).
_CATEGORY_WORDS: dict[str, str] = {
    "profile": Category.PROFILE.value,
    "posts": Category.POSTS.value,
    "activity": Category.ACTIVITY.value,
    "directmessages": Category.DIRECT_MESSAGES.value,
    "all": "all",
}
_WORD_FOR = {value: word for word, value in _CATEGORY_WORDS.items() if word != "all"}


@dataclass(frozen=True, slots=True)
class ScopeRequest:
    """What a scope string asks for: categories (``all`` expanded) and one access."""

    categories: frozenset[Category]
    access: Access

    @property
    def scope(self) -> str:
        return scope_for(self.categories, self.access)


def parse_scope(text: str | None) -> ScopeRequest:
    """Parse a space-separated scope (RFC 6749 section 3.3); raise ``OAuthError('invalid_scope')``
    naming the first token that is not ours."""
    tokens = (text or "").split()
    if not tokens:
        raise OAuthError(
            "invalid_scope", "no scope requested: ask for e.g. portability.posts.single"
        )
    words: list[str] = []
    accesses: set[Access] = set()
    for token in tokens:
        parts = token.split(".")
        if (
            len(parts) != 3
            or f"{parts[0]}." != _PREFIX
            or parts[1] not in _CATEGORY_WORDS
            or parts[2] not in {a.value for a in Access}
        ):
            raise OAuthError(
                "invalid_scope",
                f"unknown scope {token!r}: scopes are portability.<profile|posts|activity|"
                "directmessages|all>.<single|ongoing>",
            )
        words.append(_CATEGORY_WORDS[parts[1]])
        accesses.add(Access(parts[2]))
    if len(accesses) > 1:
        raise OAuthError(
            "invalid_scope",
            "scopes mix single and ongoing access: one request grants one kind of access",
        )
    return ScopeRequest(parse_categories(words), accesses.pop())


def scope_for(categories: frozenset[Category] | set[Category], access: Access | str) -> str:
    """The canonical scope string of a grant: one token per category, sorted."""
    access = Access(access)
    names = format_categories(categories).split(",")
    return " ".join(f"{_PREFIX}{_WORD_FOR[name]}.{access.value}" for name in names)
