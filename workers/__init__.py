"""The Celery app: the only package that imports Celery.

Other packages reach the broker through ``celery_enqueue(settings)``, an implementation of
``portability.dispatch.EnqueueRuns``.

``celery -A workers worker`` and ``celery -A workers beat`` load ``workers.app``, built from
``Settings()`` (the environment). Tasks stay three lines: load, call the engine, map the
outcome to retry or done.
"""

from __future__ import annotations

from workers.app import app, celery_enqueue, create_app, enqueue_runs, scheduler_probe
from workers.events import celery_enqueue_deliveries
from workers.user_exports import celery_enqueue_user_exports

__all__ = [
    "app",
    "celery_enqueue",
    "celery_enqueue_deliveries",
    "celery_enqueue_user_exports",
    "create_app",
    "enqueue_runs",
    "scheduler_probe",
]
