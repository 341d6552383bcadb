"""The webhook delivery task, on a queue of its own: ``portability.events``.

Run its workers apart from the export workers (``celery -A workers worker -Q
portability.events``), so that a slow receiver never waits behind an export and an export
never waits for a receiver. The task stays three lines: attempt, then publish the retry with
its countdown when the attempt asks for one (later retries are the dispatcher's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from celery import Celery, Task

from portability.settings import Settings
from workers._publish import EVENTS_QUEUE
from workers.app import app, create_app, runtime

__all__ = [
    "DELIVER_TASK",
    "EVENTS_QUEUE",
    "celery_enqueue_deliveries",
    "deliver_webhook",
    "enqueue_deliveries",
    "publish_deliveries",
]

DELIVER_TASK = "portability.deliver_webhook"


@app.task(  # type: ignore[untyped-decorator,unused-ignore]
    bind=True, name=DELIVER_TASK, time_limit=120, soft_time_limit=90
)
def deliver_webhook(self: Task, delivery_id: int) -> str:
    """One attempt of one delivery; the database says what, and whether it is still owed."""
    from portability.events.send import attempt_delivery
    from portability.probes import report_delivery

    outcome = attempt_delivery(runtime(), delivery_id)
    report_delivery(runtime(), outcome)
    if outcome.retry_in is not None:
        enqueue_deliveries([delivery_id], countdown=outcome.retry_in)
    return outcome.status


def enqueue_deliveries(delivery_ids: Iterable[int], *, countdown: float | None = None) -> None:
    """Publish "delivery N is due" for each id on the events queue."""
    publish_deliveries(app, list(delivery_ids), countdown=countdown)


def celery_enqueue_deliveries(settings: Settings) -> Callable[[list[int]], None]:
    """An ``enqueue`` for ``dispatch_events`` publishing to the broker of ``settings`` (the
    standalone scheduler loop's)."""
    celery = create_app(settings)

    def enqueue(delivery_ids: list[int]) -> None:
        publish_deliveries(celery, delivery_ids)

    return enqueue


def publish_deliveries(
    celery: Celery, delivery_ids: list[int], *, countdown: float | None = None
) -> None:
    if not delivery_ids:
        return
    with celery.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for delivery_id in delivery_ids:
            celery.send_task(
                DELIVER_TASK,
                args=[delivery_id],
                queue=EVENTS_QUEUE,
                countdown=countdown,
                producer=producer,
            )
