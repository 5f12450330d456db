"""The operator console's read-outs: queues, workers, schedules and the jobs overview."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gristmill.console.overview import read_overview
from gristmill.console.schedules import read_schedules
from gristmill.console.schemas import OverviewRead, QueuesRead, SchedulesRead, WorkersRead
from services.api.console import Console
from services.api.deps import ReadAuth, SessionDep, SettingsDep

router = APIRouter(prefix="/api", tags=["console"], dependencies=[ReadAuth])


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@router.get("/queues")
def list_queues(request: Request) -> QueuesRead:
    """Messages waiting per queue (every Redis priority list counted) and the oldest's age."""
    return _console(request).queues()


@router.get("/workers")
def list_workers(request: Request) -> WorkersRead:
    """Celery workers from their heartbeats; in Kubernetes also the worker pods of each pool."""
    return _console(request).workers()


@router.get("/schedules")
def list_schedules(session: SessionDep, settings: SettingsDep) -> SchedulesRead:
    """Each beat entry: cron or interval (UTC), last run and its job, next run."""
    statuses = read_schedules(session, settings)
    return SchedulesRead.model_validate({"schedules": statuses}, from_attributes=True)


@router.get("/overview")
def overview(session: SessionDep) -> OverviewRead:
    """Jobs created in the last 24 h by status and hour, unsent jobs, open dead letters."""
    return OverviewRead.model_validate(read_overview(session))
