"""Throwaway PostgreSQL schemas: benchmarks and tests share one database without meeting.

A schema's URL carries its ``search_path``, so every process given that URL (a worker, a
benchmark's child) lands in the same schema.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from portability.db.engine import make_engine

__all__ = ["create_schema", "drop_schema", "schema_url", "scratch_schema"]


def schema_url(admin_url: str, schema: str) -> str:
    return f"{admin_url}?options=-csearch_path%3D{schema}"


def create_schema(admin_url: str, prefix: str) -> str:
    """Create an empty schema named ``<prefix>_<pid>_<random>``; returns its name."""
    schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    _execute(admin_url, f'CREATE SCHEMA "{schema}"')
    return schema


def drop_schema(admin_url: str, schema: str) -> None:
    _execute(admin_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def scratch_schema(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh schema for the ``with`` block, dropped after it; yields its URL."""
    schema = create_schema(admin_url, prefix)
    try:
        yield schema_url(admin_url, schema)
    finally:
        drop_schema(admin_url, schema)


def _execute(admin_url: str, statement: str) -> None:
    admin = make_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()
