"""Points where tests inject crashes into an export, to prove every step is safe to repeat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ExportHooks"]


def _nothing(_: str) -> None:
    return None


@dataclass(frozen=True)
class ExportHooks:
    """Called with an object key (or the category) at each durable step."""

    after_part: Callable[[str], None] = field(default=_nothing)
    after_manifest: Callable[[str], None] = field(default=_nothing)
    before_checkpoint_commit: Callable[[str], None] = field(default=_nothing)
    between_batches: Callable[[str], None] = field(default=_nothing)
