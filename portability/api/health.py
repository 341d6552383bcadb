"""``/healthz`` (the process answers) and ``/readyz`` (the database and the broker answer)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from portability.api._context import Ctx

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database and the broker answer",
    responses={503: {"model": Health, "description": "A dependency does not answer."}},
)
def readyz(ctx: Ctx) -> JSONResponse:
    checks = {"database": _check_database(ctx), "broker": _check_broker(ctx)}
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), 200 if ready else 503)


def _check_database(ctx: Ctx) -> str:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the kind is enough to say
        return f"error: {type(exc).__name__}"
    return "ok"


def _check_broker(ctx: Ctx) -> str:
    from kombu import Connection  # type: ignore[attr-defined]

    url = ctx.settings.resolved_broker_url
    if url.startswith("filesystem"):  # the embedded broker is a folder this process writes
        try:
            ctx.settings.broker_folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"error: {type(exc).__name__}"
        return "ok"
    try:
        with Connection(url, connect_timeout=2) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
