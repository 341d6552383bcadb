"""``/v1/transfers``: a one-time transfer of a grant to a destination; its answer is the run."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._idempotency import IdempotencyKey, create_once
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import BodyId
from portability.api.runs import RunOut, run_out
from portability.categories import Category
from portability.runs import create_transfer

router = APIRouter(prefix="/v1/transfers", tags=["transfers"], responses=PROBLEM_RESPONSES)

Categories = Annotated[
    Literal["all"] | Annotated[list[Category], Field(min_length=1, max_length=4)],
    Field(description="`all` (every category the grant covers) or a subset of the grant's."),
]


def category_text(categories: str | list[Category]) -> str | list[str]:
    return categories if isinstance(categories, str) else [c.value for c in categories]


class TransferIn(BaseModel):
    grant_id: BodyId
    destination_id: BodyId
    categories: Categories = "all"


@router.post("", status_code=201, response_model=RunOut, summary="Start a one-time transfer")
def create(
    body: TransferIn, request: Request, caller: AppCaller, ctx: Ctx, key: IdempotencyKey = None
) -> Response:
    """Queue a run now; it is sent to the workers after it is committed."""

    def make(session: Session) -> tuple[BaseModel, list[int]]:
        run = create_transfer(
            session,
            app_id=caller.app_id,
            authorization_id=body.grant_id,
            destination_id=body.destination_id,
            categories=category_text(body.categories),
            max_attempts=ctx.settings.run_max_attempts,
        )
        return run_out(session, run), [run.id]

    return create_once(ctx, request, owner=caller.app_id, key=key, body=body, create=make)
