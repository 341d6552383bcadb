"""What every page handler needs, built once by the factory, and how every page is sent.

``page_route_class`` gives each route the same finish: the strict headers (no framing, a CSP
with a per-response nonce for the one inline stylesheet, no caching, no referrer) and the
translation of refusals into pages, so that a router mounted into another app behaves the same
as the standalone one.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from portability.errors import PortabilityError
from portability.settings import Settings
from portability.web._session import PageSession, SessionCodec

__all__ = ["PageError", "WebContext", "page_route_class"]


class PageError(Exception):
    """Stop here and show the user a page saying what is wrong (never a redirect)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


@dataclass
class WebContext:
    settings: Settings
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    codec: SessionCodec
    templates: Environment = field(
        default_factory=lambda: Environment(
            loader=PackageLoader("portability.web", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
    )

    def render(
        self,
        request: Request,
        page: PageSession,
        template: str,
        *,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            csp_nonce=_nonce(request),
            csrf_token=page.csrf_token,
            user_id=page.user_id,
            dev_login=self.settings.web_dev_login,
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        self.codec.save(response, page)
        return response

    def error_page(self, request: Request, error: PageError) -> HTMLResponse:
        page = self.codec.load(request)
        return self.render(
            request,
            page,
            "error.html",
            status=error.status,
            title=error.title,
            message=error.message,
        )


def _nonce(request: Request) -> str:
    nonce = getattr(request.state, "csp_nonce", None)
    if nonce is None:
        nonce = request.state.csp_nonce = secrets.token_urlsafe(16)
    return str(nonce)


def _secure(request: Request, response: Response) -> Response:
    form_targets = " ".join(["'self'", *getattr(request.state, "form_action", [])])
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{_nonce(request)}'; img-src 'self'; "
        f"form-action {form_targets}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def page_route_class(context: WebContext) -> type[APIRoute]:
    class PageRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def secured(request: Request) -> Response:
                try:
                    response = await handle(request)
                except PageError as exc:
                    response = context.error_page(request, exc)
                except PortabilityError as exc:
                    response = context.error_page(
                        request, PageError(400, "This request cannot be completed", str(exc))
                    )
                return _secure(request, response)

            return secured

    return PageRoute
