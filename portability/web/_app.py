"""Building the pages: a router to include in the API app, or an app of its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from portability.db.base import utcnow
from portability.db.engine import make_engine, make_session_factory
from portability.settings import Settings
from portability.web._account import add_account_routes
from portability.web._consent import add_consent_routes
from portability.web._context import WebContext, page_route_class
from portability.web._describe import when
from portability.web._downloads import add_download_routes
from portability.web._session import SessionCodec
from portability.web._signin import add_signin_routes
from portability.web._token import add_token_route

__all__ = ["create_web_app", "create_web_router"]

Clock = Callable[[], datetime]


def create_web_router(
    settings: Settings,
    *,
    sessions: sessionmaker[Session],
    clock: Clock = utcnow,
) -> APIRouter:
    """The consent flow, the connected-apps page and ``/oauth/token`` as one router:
    ``api.include_router(create_web_router(settings, sessions=...))``. Every response carries
    the pages' strict headers, whatever app includes it."""
    context = WebContext(
        settings=settings,
        sessions=sessions,
        clock=clock,
        codec=SessionCodec(
            settings.resolved_web_session_key(), settings.web_session_max_age_seconds
        ),
    )
    context.templates.globals["when"] = when
    router = APIRouter(route_class=page_route_class(context), include_in_schema=False)
    add_signin_routes(router, context)
    add_consent_routes(router, context)
    add_account_routes(router, context)
    add_download_routes(router, context)
    add_token_route(router, context)
    return router


def create_web_app(
    settings: Settings,
    *,
    sessions: sessionmaker[Session] | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """The pages served on their own (demo, tests); builds the database engine from
    ``settings`` unless ``sessions`` is given."""
    if sessions is None:
        sessions = make_session_factory(make_engine(settings))
    app = FastAPI(title="portability consent", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(create_web_router(settings, sessions=sessions, clock=clock))
    return app
