"""Publishing "run N is due" to Celery fast enough for 10,000 runs in one tick.

Celery's ``apply_async`` costs about 0.35 ms per message (routing, argument reprs, entity
binding, one Redis round trip each): 1,400 messages/s, so 10,000 runs would take 7 s. Two
faster paths, both producing the messages ``apply_async`` would:

- any broker: Celery's ``send_task`` inside kombu's ``Producer.batch()``, which pipelines the
  Redis writes (about 2,700 messages/s);
- Redis with Celery's defaults (protocol 2, JSON, no compression, no task routes, a direct
  default queue): one message is built with Celery's own ``amqp.as_task_v2`` and kombu's
  envelope, then copied per run with a new task id, delivery tag and argument, and the
  envelopes are pushed with one ``LPUSH`` per thousand onto the queue's list, which is what
  kombu's Redis transport does for a message to the default exchange (about 30,000
  messages/s). ``tests/integration/test_scheduler_pg.py`` checks that such a message equals
  the one ``send_task`` writes, identifiers aside, and that a real Celery worker runs them.

Fairness: with an ``engine``, runs are routed to ``portability.export.{app_id % N}`` (N =
``PORTABILITY_EXPORT_QUEUES``). Workers take from every queue in turn (kombu's Redis transport
rotates the queues it pops from), so when one big app's daily tick enqueues 100,000 runs on
its queue, another app's run on another queue waits for one free slot, not for the whole
burst. Routing by app rather than by size class: the burst is what starves, and an app's
runs are alike in size. Two apps sharing a queue share its turn: raise N if that matters.
Without an engine (tests, the CLI's one-off sends) messages go to the default queue, which
workers also consume.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from celery import Celery
from celery.utils.nodenames import anon_nodename
from sqlalchemy import Engine, select

__all__ = ["EXPORT_TASK", "publish_runs"]

__all__ = [
    "EVENTS_QUEUE",
    "EXPORT_TASK",
    "HOUSEKEEPING_QUEUE",
    "export_queue",
    "export_queue_names",
    "publish_routed",
    "publish_runs",
    "queue_depths",
    "worker_queue_names",
]

#: The export task's name (``workers.app.EXPORT_TASK``), sent by name.
EXPORT_TASK = "portability.export_run"
#: Queues of their own, so that webhooks and housekeeping never wait behind exports.
EVENTS_QUEUE = "portability.events"
HOUSEKEEPING_QUEUE = "portability.housekeeping"
_EXPORT_PREFIX = "portability.export"
_CHUNK = 1000


def export_queue(app_id: int, queues: int) -> str:
    return f"{_EXPORT_PREFIX}.{app_id % queues}"


def export_queue_names(queues: int) -> list[str]:
    return [f"{_EXPORT_PREFIX}.{i}" for i in range(queues)]


def worker_queue_names(app: Celery, queues: int) -> list[str]:
    """Every queue a worker consumes by default: the default one, the export queues and
    housekeeping. Webhook deliveries (``EVENTS_QUEUE``) have workers of their own
    (``-Q portability.events``), so an export never waits behind a slow receiver."""
    return [app.conf.task_default_queue, *export_queue_names(queues), HOUSEKEEPING_QUEUE]


def publish_routed(app: Celery, engine: Engine, run_ids: Sequence[int], *, queues: int) -> None:
    """Publish each run on its app's export queue (one indexed read per thousand runs)."""
    from portability.db.models import Run

    routed: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for start in range(0, len(run_ids), _CHUNK):
            chunk = list(run_ids[start : start + _CHUNK])
            rows = conn.execute(select(Run.id, Run.app_id).where(Run.id.in_(chunk)))
            for run_id, app_id in rows:
                routed.setdefault(export_queue(app_id, queues), []).append(run_id)
    for queue, ids in routed.items():
        publish_runs(app, ids, queue=queue)


def publish_runs(
    app: Celery,
    run_ids: Sequence[int],
    *,
    task_name: str = EXPORT_TASK,
    queue: str | None = None,
) -> None:
    """Send one ``task_name(run_id)`` message per id to ``queue`` (default: the default
    queue), as ``apply_async`` would."""
    if not run_ids:
        return
    with app.connection_or_acquire() as connection:  # pooled: one Redis connection per process
        if _can_push_directly(app, connection):
            _push_redis(app, connection, run_ids, task_name, queue)
            return
    with app.producer_or_acquire() as producer, producer.batch(max_size=_CHUNK):
        for run_id in run_ids:
            app.send_task(task_name, args=[run_id], producer=producer, queue=queue)


def queue_depths(app: Celery, names: Sequence[str]) -> dict[str, int | None]:
    """Messages waiting in each queue (a passive declare: nothing is created); None for a
    queue the broker cannot count."""
    depths: dict[str, int | None] = {}
    with app.connection_or_acquire() as connection:
        # On Redis a queue is a list, and an empty list does not exist: absent means empty.
        absent = 0 if connection.transport.driver_type == "redis" else None
        channel = connection.default_channel
        for name in names:
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except Exception:
                depths[name] = absent  # never declared, or not countable on this broker
    return depths


def _can_push_directly(app: Celery, connection: Any) -> bool:
    conf = app.conf
    queue = app.amqp.queues.get(conf.task_default_queue)
    return bool(
        connection.transport.driver_type == "redis"
        and conf.task_protocol == 2
        and conf.task_serializer == "json"
        and not conf.task_compression
        and not conf.task_routes
        and not conf.task_queue_max_priority
        and not conf.task_default_priority
        and not conf.task_send_sent_event
        and queue is not None
        and queue.exchange.type == "direct"
    )


def _push_redis(
    app: Celery, connection: Any, run_ids: Sequence[int], task_name: str, queue: str | None
) -> None:
    queue_name: str = queue or app.amqp.queues[app.conf.task_default_queue].name
    template = _Template(app, task_name, queue_name)
    client = connection.default_channel.client  # honours global_keyprefix and the db number
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start : start + _CHUNK]
        client.lpush(queue_name, *(template.render(run_id) for run_id in chunk))


class _Template:
    """A Celery message for one argument, copied per run id."""

    def __init__(self, app: Celery, task_name: str, queue_name: str) -> None:
        placeholder = "00000000-0000-0000-0000-000000000000"
        headers, properties, body, _ = app.amqp.as_task_v2(
            placeholder,
            task_name,
            args=[0],
            reply_to=app.thread_oid,
            origin=anon_nodename(),
            ignore_result=None,
        )
        self._headers: dict[str, Any] = dict(headers)
        self._properties: dict[str, Any] = {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue_name},
            "priority": 0,
            "body_encoding": "base64",
        }
        self._body_tail = body[1:]  # (kwargs, embed) after the args list

    def render(self, run_id: int) -> bytes:
        task_id = str(uuid.uuid4())
        body = orjson.dumps([[run_id], *self._body_tail])
        headers = {**self._headers, "id": task_id, "root_id": task_id, "argsrepr": f"[{run_id}]"}
        properties = {
            **self._properties,
            "correlation_id": task_id,
            "delivery_tag": str(uuid.uuid4()),
        }
        return orjson.dumps(
            {
                "body": base64.b64encode(body).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": properties,
            }
        )
