"""``/v1/runs``: what happened to each transfer; cancel one still queued or running."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from portability.api._auth import AppCaller
from portability.api._context import ApiContext, Ctx
from portability.api._pagination import Cursor, Limit, Page, paginate
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import MAX_ID, PathId
from portability.db.models import Run, RunCategory, RunStatus
from portability.errors import NotFoundError
from portability.runs import cancel_app_run
from portability.scope import AppScope

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=PROBLEM_RESPONSES)


class RunCategoryOut(BaseModel):
    category: str
    status: str
    records: int
    bytes: int
    parts: int
    sequence: int | None = Field(description="The stream's manifest number of this delivery.")
    manifest_key: str | None = Field(description="Written last: its presence means delivered.")


class RunSummary(BaseModel):
    id: int
    status: RunStatus
    schedule_id: int | None
    grant_id: int
    destination_id: int
    categories: list[str]
    attempts: int
    records: int
    bytes: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    failure_reason: str | None = Field(
        description="consent | destination_permanent | destination_transient | source | internal"
    )
    message: str | None = Field(description="What stopped the run, and what to fix.")
    rerun_of: int | None

    @classmethod
    def fields_of(cls, run: Run) -> dict[str, object]:
        return {
            "id": run.id,
            "status": run.status,
            "schedule_id": run.schedule_id,
            "grant_id": run.authorization_id,
            "destination_id": run.destination_id,
            "categories": run.categories.split(","),
            "attempts": run.attempts,
            "records": run.records,
            "bytes": run.bytes,
            "queued_at": run.queued_at,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "failure_reason": run.failure_reason,
            "message": run.last_error,
            "rerun_of": run.rerun_of,
        }

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        return cls.model_validate(cls.fields_of(run))


class RunOut(RunSummary):
    per_category: list[RunCategoryOut]


def run_out(session: Session, run: Run) -> RunOut:
    """The run with its per-category results (live while it runs)."""
    rows = session.scalars(
        select(RunCategory).where(RunCategory.run_id == run.id).order_by(RunCategory.category)
    ).all()
    per_category = [
        RunCategoryOut(
            category=r.category,
            status=r.status,
            records=r.records,
            bytes=r.bytes,
            parts=r.parts,
            sequence=r.sequence,
            manifest_key=r.manifest_key,
        )
        for r in rows
    ]
    fields = RunSummary.fields_of(run)
    if run.status == RunStatus.RUNNING:  # the run's totals are summed as it finishes
        fields.update(records=sum(r.records for r in rows), bytes=sum(r.bytes for r in rows))
    return RunOut.model_validate({**fields, "per_category": per_category})


OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.get("", summary="Runs, newest first, filtered")
def list_runs(
    caller: AppCaller,
    ctx: Ctx,
    status: RunStatus | None = None,
    schedule_id: OptionalId = None,
    grant_id: OptionalId = None,
    queued_after: datetime | None = None,
    queued_before: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[RunSummary]:
    with ctx.reading() as session:
        query = AppScope(session, caller.app_id).select(Run)
        if status is not None:
            query = query.where(Run.status == status.value)
        if schedule_id is not None:
            query = query.where(Run.schedule_id == schedule_id)
        if grant_id is not None:
            query = query.where(Run.authorization_id == grant_id)
        if queued_after is not None:
            query = query.where(Run.queued_at >= _aware(queued_after))
        if queued_before is not None:
            query = query.where(Run.queued_at < _aware(queued_before))
        return paginate(session, query, Run.id, cursor=cursor, limit=limit, convert=RunSummary.of)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_RUN_COLUMNS = [
    Run.id,
    Run.status,
    Run.schedule_id,
    Run.authorization_id,
    Run.destination_id,
    Run.categories,
    Run.attempts,
    Run.records,
    Run.bytes,
    Run.queued_at,
    Run.started_at,
    Run.finished_at,
    Run.failure_reason,
    Run.last_error,
    Run.rerun_of,
]
_CATEGORY_COLUMNS = [
    RunCategory.category.label("c_category"),
    RunCategory.status.label("c_status"),
    RunCategory.records.label("c_records"),
    RunCategory.bytes.label("c_bytes"),
    RunCategory.parts.label("c_parts"),
    RunCategory.sequence.label("c_sequence"),
    RunCategory.manifest_key.label("c_manifest_key"),
]
#: The hot read: the run and its categories in one statement, built once. The app filter is
#: spelled here rather than through ``AppScope`` to keep the statement prebuilt; the isolation
#: walk (tests/integration/api/test_api_isolation.py) holds it to the same answer.
_SHOW = (
    select(*_RUN_COLUMNS, *_CATEGORY_COLUMNS)
    .outerjoin(RunCategory, RunCategory.run_id == Run.id)
    .where(Run.id == bindparam("run_id"), Run.app_id == bindparam("app_id"))
    .order_by(RunCategory.category)
)


def _show_json(ctx: ApiContext, app_id: int, run_id: int) -> bytes:
    rows = ctx.read_rows(_SHOW, {"run_id": run_id, "app_id": app_id})
    if not rows:
        raise NotFoundError(f"run {run_id} not found")
    run = rows[0]
    per_category = [
        {
            "category": r["c_category"],
            "status": r["c_status"],
            "records": r["c_records"],
            "bytes": r["c_bytes"],
            "parts": r["c_parts"],
            "sequence": r["c_sequence"],
            "manifest_key": r["c_manifest_key"],
        }
        for r in rows
        if r["c_category"] is not None
    ]
    is_running = run["status"] == RunStatus.RUNNING.value  # totals are summed as it finishes
    body = {
        "id": run["id"],
        "status": run["status"],
        "schedule_id": run["schedule_id"],
        "grant_id": run["authorization_id"],
        "destination_id": run["destination_id"],
        "categories": run["categories"].split(","),
        "attempts": run["attempts"],
        "records": sum(c["records"] for c in per_category) if is_running else run["records"],
        "bytes": sum(c["bytes"] for c in per_category) if is_running else run["bytes"],
        "queued_at": _utc(run["queued_at"]),
        "started_at": _utc(run["started_at"]),
        "finished_at": _utc(run["finished_at"]),
        "failure_reason": run["failure_reason"],
        "message": run["last_error"],
        "rerun_of": run["rerun_of"],
        "per_category": per_category,
    }
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


@router.get("/{run_id}", response_model=RunOut, summary="One run with per-category results")
async def show(run_id: PathId, caller: AppCaller, request: Request) -> Response:
    """The hot path: one prebuilt statement on an autocommit connection, serialised straight
    to JSON (no ORM objects, no second validation of the answer)."""
    ctx: ApiContext = request.app.state.context
    body = await run_in_threadpool(_show_json, ctx, caller.app_id, run_id)
    return Response(body, media_type="application/json")


@router.post("/{run_id}/cancel", summary="Cancel a queued or running run")
def cancel(run_id: PathId, caller: AppCaller, ctx: Ctx) -> RunOut:
    """A running export stops at its next lease renewal; 409 once the run has finished."""
    with ctx.writing() as session:
        cancel_app_run(session, app_id=caller.app_id, run_id=run_id)
    with ctx.reading() as session:
        return run_out(session, AppScope(session, caller.app_id).get(Run, run_id))
