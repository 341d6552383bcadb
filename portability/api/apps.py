"""``/v1/apps``: apply for access (no key yet), and read your own app."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import Text
from portability.db.models import App
from portability.keys import key_id_of
from portability.registry import apply_for_app

router = APIRouter(prefix="/v1/apps", tags=["apps"])


class ApplyIn(BaseModel):
    name: Annotated[str, Text(200, 1)]
    contact_email: Annotated[str, Text(320, 3)] = Field(description="Where staff reach you.")
    use_case: Annotated[str, Text(5000)] = Field(
        description="What the app does with which data, for whom: staff review it. A "
        "placeholder or a few words are refused."
    )


class AppOut(BaseModel):
    id: int
    name: str
    contact_email: str
    use_case: str
    status: str = Field(description="pending | approved | rejected | suspended")
    created_at: datetime

    @classmethod
    def of(cls, app: App) -> AppOut:
        return cls(
            id=app.id,
            name=app.name,
            contact_email=app.contact_email,
            use_case=app.use_case,
            status=app.status,
            created_at=app.created_at,
        )


class AppliedOut(AppOut):
    api_key: str = Field(description="Shown this once: store it now. It is kept only hashed.")
    key_id: str = Field(description="The key's visible id, used to rotate or revoke it.")


_UNAUTHENTICATED: dict[int | str, dict[str, Any]] = {
    422: PROBLEM_RESPONSES[422],
    429: PROBLEM_RESPONSES[429],
}


@router.post("", status_code=201, responses=_UNAUTHENTICATED, summary="Apply for API access")
def apply(body: ApplyIn, ctx: Ctx) -> AppliedOut:
    """Register an app. It stays `pending`, and every other call answers 403
    `awaiting-review`, until staff approve it."""
    with ctx.writing() as session:
        app, api_key = apply_for_app(
            session, name=body.name, contact_email=body.contact_email, use_case=body.use_case
        )
        return AppliedOut(**AppOut.of(app).model_dump(), api_key=api_key, key_id=key_id_of(api_key))


@router.get("/me", responses=PROBLEM_RESPONSES, summary="Your app")
def show_me(caller: AppCaller, ctx: Ctx) -> AppOut:
    with ctx.reading() as session:
        app = session.get(App, caller.app_id)
        assert app is not None
        return AppOut.of(app)
