"""``create_app(settings)``: the FastAPI application, built from explicit settings.

Nothing is created on import. The factory builds the engine, the credential box and the
caches; the Celery side is reached only through ``enqueue`` (by default a lazy publisher that
imports ``workers`` on the first run it sends), so the API process never loads the Celery app
unless it enqueues.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from portability.api import (
    apps,
    destinations,
    events,
    grants,
    health,
    internal,
    keys,
    manifest_keys,
    redirect_uris,
    runs,
    schedules,
    transfers,
    user_exports,
    webhook_endpoints,
)
from portability.api._context import ApiContext, Enqueue, EnqueueDeliveries, ProbeDestination
from portability.api._keycache import KeyCache
from portability.api._problems import install, problem_media_type
from portability.api._types import refuse_unknown_query
from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.destinations.s3 import S3Config
from portability.errors import DestinationError, DestinationPermanentError
from portability.metrics import metrics_app
from portability.settings import Settings
from portability.web import create_web_router

__all__ = ["create_app", "probe_s3"]

API_VERSION = "1.0.0"
DESCRIPTION = """The developer API of portability: apply for access, register S3-compatible
destinations, and send the data your users granted you there, once or on a schedule; hear
about runs, replays and revocations through signed webhooks (Standard Webhooks).

Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457
`application/problem+json`; branch on `type`. Lists are cursor-paginated (`next_cursor`).
Creates accept an `Idempotency-Key` header."""


def probe_s3(config: S3Config) -> None:
    """Write, read back and delete a probe object with the destination's own keys."""
    from portability.destinations.s3 import S3Destination

    try:
        S3Destination(config).probe()
    except DestinationError:
        raise
    except Exception as exc:  # botocore refusing the parameters before any request
        raise DestinationPermanentError(
            f"bucket {config.bucket!r} at {config.endpoint_label} cannot be reached: "
            f"{type(exc).__name__}"
        ) from None


def create_app(
    settings: Settings,
    *,
    enqueue: Enqueue,
    probe: ProbeDestination | None = None,
    enqueue_deliveries: EnqueueDeliveries | None = None,
) -> FastAPI:
    """The API from explicit parts: ``enqueue`` publishes "run N is due" after each commit (the
    ``portability api`` command passes Celery's, through ``workers``; tests pass a list's
    ``extend``), ``enqueue_deliveries`` likewise "webhook delivery N is due" (without it the
    dispatcher publishes them within a second or so). The core never imports the workers."""
    pool = {"pool_size": settings.api_db_pool_size, "max_overflow": settings.api_db_pool_size}
    is_sqlite = settings.resolved_database_url.startswith("sqlite")
    engine = make_engine(settings) if is_sqlite else make_engine(settings, **pool)
    # Hot lone reads take raw connections of their own small autocommit pool: no BEGIN, and
    # no rollback when one goes back (``ApiContext.read_rows``).
    half = {key: max(1, value // 2) for key, value in pool.items()}
    reader = (
        engine
        if is_sqlite
        else make_engine(settings, **half, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
    )
    context = ApiContext(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        box=CredentialBox(settings.resolved_encryption_keys()),
        enqueue=enqueue,
        probe=probe or probe_s3,
        keys=KeyCache(settings.api_key_cache_seconds),
        reader=reader,
        enqueue_deliveries=enqueue_deliveries,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await context.close()
        engine.dispose()

    app = FastAPI(
        title="portability",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(refuse_unknown_query)],
    )
    app.state.context = context
    install(app)
    # Routes match in order: the hottest (a run's status, polled by developers) comes first.
    for module in (
        runs,
        transfers,
        health,
        apps,
        keys,
        destinations,
        grants,
        schedules,
        manifest_keys,
        redirect_uris,
        webhook_endpoints,
        events,
    ):
        app.include_router(module.router)
    app.include_router(internal.router)
    app.include_router(user_exports.router)
    # The user's side: the consent flow, the connected-apps page and /oauth/token, served by
    # the same ASGI app (their own strict headers; not part of the developer API's schema).
    app.include_router(create_web_router(settings, sessions=context.sessions))
    # Prometheus: the API's own series plus the backlog and delivery lag, read when scraped.
    app.mount("/metrics", metrics_app(engine=engine))
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_media_type(plain_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
