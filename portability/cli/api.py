"""``portability api``: serve the developer HTTP API with uvicorn.

With no configuration it runs on the embedded default (SQLite and the filesystem broker under
``PORTABILITY_DATA_DIR``), migrated to head first, so `portability api` alone is a working API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import typer

from portability.cli._context import load_settings
from portability.settings import Settings


def serve(
    host: str | None = typer.Option(None, help="Interface; default PORTABILITY_API_HOST."),
    port: int | None = typer.Option(None, help="Port; default PORTABILITY_API_PORT (8000)."),
    migrate: bool = typer.Option(True, help="Upgrade the database to head before serving."),
    access_log: bool = typer.Option(True, help="Log one line per request (never headers)."),
) -> None:
    """Serve the developer API (`/v1`, `/internal`, `/openapi.json`, `/docs`)."""
    import uvicorn

    from portability.api import create_app
    from portability.db.engine import make_engine
    from portability.db.migrate import upgrade

    settings = load_settings()
    if migrate:
        engine = make_engine(settings)
        upgrade(engine)
        engine.dispose()
    app = create_app(
        settings,
        enqueue=celery_enqueue_later(settings),
        enqueue_deliveries=celery_enqueue_deliveries_later(settings),
    )
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        access_log=access_log,
        log_level="info",
    )


def celery_enqueue_later(settings: Settings) -> Callable[[Sequence[int]], None]:
    """Publish through the workers' public ``celery_enqueue``, connected on the first call (the
    API starts even while the broker is down; a run committed meanwhile stays queued for the
    reconciler)."""
    lock = threading.Lock()
    publisher: list[Callable[[list[int]], object]] = []

    def enqueue(run_ids: Sequence[int]) -> None:
        if not run_ids:
            return
        with lock:
            if not publisher:
                from workers import celery_enqueue

                publisher.append(celery_enqueue(settings))
        publisher[0](list(run_ids))

    return enqueue


def celery_enqueue_deliveries_later(settings: Settings) -> Callable[[list[int]], None]:
    """Publish webhook deliveries through the workers' public ``celery_enqueue_deliveries``,
    connected on the first call (a delivery whose publish failed is the dispatcher's)."""
    lock = threading.Lock()
    publisher: list[Callable[[list[int]], None]] = []

    def enqueue(delivery_ids: list[int]) -> None:
        if not delivery_ids:
            return
        with lock:
            if not publisher:
                from workers import celery_enqueue_deliveries

                publisher.append(celery_enqueue_deliveries(settings))
        publisher[0](delivery_ids)

    return enqueue


def register(root: typer.Typer) -> None:
    root.command("api")(serve)
