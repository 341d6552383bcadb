"""``/v1/schedules``: recurring transfers of ongoing grants, on a cron in a time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._idempotency import IdempotencyKey, create_once
from portability.api._pagination import Cursor, Limit, Page, paginate
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import BodyId, PathId, Text
from portability.api.runs import RunOut, run_out
from portability.api.transfers import Categories, category_text
from portability.db.models import Schedule
from portability.registry import delete_schedule, schedule_for_app, set_schedule_paused
from portability.runs import run_schedule_now
from portability.scope import AppScope

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=PROBLEM_RESPONSES)


class ScheduleIn(BaseModel):
    grant_id: BodyId = Field(description="An `ongoing` grant of this app.")
    destination_id: BodyId
    categories: Categories = "all"
    cron: Annotated[str, Text(100, 1)] = Field(
        description="Five-field cron (`0 3 * * *`) or a preset: @hourly, @daily, @weekly, "
        "@monthly, @yearly."
    )
    timezone: Annotated[str, Text(64, 1)] = Field(
        default="UTC", description="IANA time zone the cron is read in (`Europe/Berlin`)."
    )


class ScheduleOut(BaseModel):
    id: int
    grant_id: int
    destination_id: int
    categories: list[str]
    cron: str | None
    timezone: str
    state: Literal["active", "paused", "disabled"]
    next_run_at: datetime | None = Field(description="When the next run is due (UTC).")
    disabled_reason: str | None
    last_run_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Schedule) -> ScheduleOut:
        state: Literal["active", "paused", "disabled"] = (
            "disabled" if row.next_run_at is None else "paused" if row.is_paused else "active"
        )
        return cls(
            id=row.id,
            grant_id=row.authorization_id,
            destination_id=row.destination_id,
            categories=row.categories.split(","),
            cron=row.cron,
            timezone=row.timezone,
            state=state,
            next_run_at=row.next_run_at,
            disabled_reason=row.disabled_reason,
            last_run_id=row.last_run_id,
            created_at=row.created_at,
        )


@router.post("", status_code=201, response_model=ScheduleOut, summary="Create a schedule")
def create(
    body: ScheduleIn, request: Request, caller: AppCaller, ctx: Ctx, key: IdempotencyKey = None
) -> Response:
    """Runs are planned in `timezone` (daylight-saving aware), at most one per
    `PORTABILITY_SCHEDULER_MIN_INTERVAL_MINUTES`."""
    settings = ctx.settings

    def make(session: Session) -> tuple[BaseModel, list[int]]:
        schedule = schedule_for_app(
            session,
            app_id=caller.app_id,
            authorization_id=body.grant_id,
            destination_id=body.destination_id,
            categories=category_text(body.categories),
            cron=body.cron,
            timezone=body.timezone,
            min_interval_minutes=settings.scheduler_min_interval_minutes,
            max_jitter_seconds=settings.scheduler_max_jitter_seconds,
        )
        return ScheduleOut.of(schedule), []

    return create_once(ctx, request, owner=caller.app_id, key=key, body=body, create=make)


@router.get("", summary="The app's schedules, newest first")
def list_schedules(
    caller: AppCaller, ctx: Ctx, cursor: Cursor = None, limit: Limit = 50
) -> Page[ScheduleOut]:
    with ctx.reading() as session:
        query = AppScope(session, caller.app_id).select(Schedule)
        return paginate(
            session, query, Schedule.id, cursor=cursor, limit=limit, convert=ScheduleOut.of
        )


@router.get("/{schedule_id}", summary="One schedule, with its next run time")
def show(schedule_id: PathId, caller: AppCaller, ctx: Ctx) -> ScheduleOut:
    with ctx.reading() as session:
        return ScheduleOut.of(AppScope(session, caller.app_id).get(Schedule, schedule_id))


@router.post("/{schedule_id}/pause", summary="Pause: no run starts until resumed")
def pause(schedule_id: PathId, caller: AppCaller, ctx: Ctx) -> ScheduleOut:
    with ctx.writing() as session:
        row = set_schedule_paused(
            session, app_id=caller.app_id, schedule_id=schedule_id, paused=True
        )
        return ScheduleOut.of(row)


@router.post("/{schedule_id}/resume", summary="Resume; one run catches up what was missed")
def resume(schedule_id: PathId, caller: AppCaller, ctx: Ctx) -> ScheduleOut:
    with ctx.writing() as session:
        row = set_schedule_paused(
            session, app_id=caller.app_id, schedule_id=schedule_id, paused=False
        )
        return ScheduleOut.of(row)


@router.post("/{schedule_id}/run", status_code=201, summary="Run now, besides the plan")
def run_now(schedule_id: PathId, caller: AppCaller, ctx: Ctx) -> RunOut:
    with ctx.writing() as session:
        run = run_schedule_now(
            session,
            app_id=caller.app_id,
            schedule_id=schedule_id,
            max_attempts=ctx.settings.run_max_attempts,
        )
        out = run_out(session, run)
    ctx.publish([out.id])
    return out


@router.delete("/{schedule_id}", status_code=204, summary="Delete; its runs stay visible")
def delete(schedule_id: PathId, caller: AppCaller, ctx: Ctx) -> Response:
    with ctx.writing() as session:
        delete_schedule(session, app_id=caller.app_id, schedule_id=schedule_id)
    return Response(status_code=204)
