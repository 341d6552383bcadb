"""The plain words the pages use for categories, access and times."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from portability.categories import Category

__all__ = ["CATEGORY_TEXT", "describe_categories", "when"]

#: What each category holds, in the words a user would use.
CATEGORY_TEXT: dict[Category, tuple[str, str]] = {
    Category.PROFILE: (
        "Profile",
        "your username, display name, bio, profile picture, birth date, language and how "
        "many people you follow and who follow you",
    ),
    Category.POSTS: (
        "Posts",
        "the videos you posted, with their captions, hashtags, privacy setting and likes",
    ),
    Category.ACTIVITY: (
        "Activity",
        "what you did on the platform: likes, follows, comments, shares and what you watched",
    ),
    Category.DIRECT_MESSAGES: (
        "Direct messages",
        "the messages you sent and received in your conversations, with their dates",
    ),
}


def describe_categories(categories: Iterable[Category | str]) -> list[tuple[str, str]]:
    """(name, what it contains) for each category, in a stable order."""
    chosen = {Category(c) for c in categories}
    return [CATEGORY_TEXT[c] for c in Category if c in chosen]


def when(moment: datetime | None, *, never: str = "never") -> str:
    """A UTC time as people read it: ``7 December 2026, 10:15 UTC``."""
    if moment is None:
        return never
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"
