"""The developer HTTP API (FastAPI): ``create_app(settings)`` builds it; ``portability api``
serves it with uvicorn. One router module per resource; errors are problem+json."""

from __future__ import annotations

from portability.api.app import create_app

__all__ = ["create_app"]
