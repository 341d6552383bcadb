"""The Celery app: the only package that imports Celery.

``celery -A workers worker`` and ``celery -A workers beat`` load ``workers.app``, built from
``Settings()`` (the environment). Tasks stay three lines: load, call the engine, map the
outcome to retry or done.
"""

from __future__ import annotations

from workers.app import app, create_app

__all__ = ["app", "create_app"]
