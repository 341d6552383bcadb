"""The user's side on the web: the OAuth consent pages and "connected apps".

Server-rendered Jinja2 pages with plain forms: they work without JavaScript, carry a CSRF
token in every form and are sent with headers that forbid framing. See ``create_web_router``.
"""

from portability.web._app import create_web_app, create_web_router

__all__ = ["create_web_app", "create_web_router"]
