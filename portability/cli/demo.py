"""`portability demo` (placeholder; filled in by its owner)."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    return None
