"""The "download your data" task, on a queue of its own: ``portability.user_exports``.

Run its workers apart from the export workers (``celery -A workers worker -Q
portability.user_exports``), so that a user's archive never waits behind developers'
transfers, nor holds one back. The task stays three lines: run, then retry with the countdown
the outcome asks for. Beat and the scheduler loop publish queued exports (see
``portability.user_exports.housekeeping``).
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import Celery, Task

from portability.settings import Settings
from portability.user_exports import EnqueueExports
from workers.app import app, create_app, runtime

__all__ = [
    "USER_EXPORTS_QUEUE",
    "USER_EXPORT_TASK",
    "celery_enqueue_user_exports",
    "enqueue_user_exports",
    "publish_user_exports",
    "user_export",
]

USER_EXPORT_TASK = "portability.user_export"
USER_EXPORTS_QUEUE = "portability.user_exports"


@app.task(bind=True, name=USER_EXPORT_TASK, max_retries=None)  # type: ignore[untyped-decorator,unused-ignore]
def user_export(self: Task, export_id: int) -> str:
    """Run one user export; a transient failure comes back with its countdown."""
    from portability.user_exports.run import run_user_export

    outcome = run_user_export(runtime(), export_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, queue=USER_EXPORTS_QUEUE)
    return outcome.status


def enqueue_user_exports(export_ids: Iterable[int]) -> None:
    """Publish "export N is due" for each id on the user exports queue."""
    publish_user_exports(app, list(export_ids))


def celery_enqueue_user_exports(settings: Settings) -> EnqueueExports:
    """An ``EnqueueExports`` publishing to the broker of ``settings`` (the standalone
    scheduler loop's)."""
    celery = create_app(settings)

    def enqueue(export_ids: list[int]) -> None:
        publish_user_exports(celery, export_ids)

    return enqueue


def publish_user_exports(celery: Celery, export_ids: list[int]) -> None:
    if not export_ids:
        return
    with celery.producer_or_acquire() as producer:
        for export_id in export_ids:
            celery.send_task(
                USER_EXPORT_TASK, args=[export_id], queue=USER_EXPORTS_QUEUE, producer=producer
            )
