"""A third-party app as small as can be: it starts the consent flow and exchanges the code.

Its home page links to the consent page with a fresh PKCE pair and state; its loopback
``/callback`` checks the state, exchanges the code at ``/oauth/token`` with its API key and
shows what it got (or the error the user's decision sent back). What it received is kept in
``ThirdPartyApp.results`` for the test to read.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from portability.oauth import s256


@dataclass
class ThirdPartyApp:
    portal: str
    client_id: int
    api_key: str
    scope: str
    results: list[dict[str, Any]] = field(default_factory=list)
    _verifiers: dict[str, str] = field(default_factory=dict)

    def asgi(self) -> Starlette:
        return Starlette(routes=[Route("/", self.home), Route("/callback", self.callback)])

    async def home(self, request: Request) -> HTMLResponse:
        state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        self._verifiers[state] = verifier
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": f"{request.base_url}callback",
                "response_type": "code",
                "scope": self.scope,
                "state": state,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
        )
        link = html.escape(f"{self.portal}/oauth/authorize?{query}")
        return HTMLResponse(
            f'<h1>Acme Backup</h1><a id="connect" href="{link}">Connect your data</a>'
        )

    async def callback(self, request: Request) -> HTMLResponse:
        params = request.query_params
        verifier = self._verifiers.pop(params.get("state", ""), None)
        if verifier is None:
            return HTMLResponse("<h1>Unknown state</h1>", status_code=400)
        if "error" in params:
            self.results.append({"error": params["error"]})
            return HTMLResponse(f"<h1>Not connected</h1><p id='error'>{params['error']}</p>")
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.portal}/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": params["code"],
                    "redirect_uri": f"{request.base_url}callback",
                    "code_verifier": verifier,
                },
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
        body = response.json()
        self.results.append(body)
        return HTMLResponse(
            "<h1>Connected</h1>"
            f"<p id='grant'>grant {body.get('authorization_id')}</p>"
            f"<p id='scope'>{html.escape(str(body.get('scope') or body))}</p>"
        )
