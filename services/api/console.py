"""The console's process-wide parts: Redis clients, the worker-pod lister and the stream hub.

Built in the api's lifespan (never at import) and kept on `app.state.console`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import select

from gristmill.console.pods import PodLister, pod_lister_from_settings
from gristmill.console.queues import read_queues
from gristmill.console.schemas import QueuesRead, WorkersRead
from gristmill.console.streams import StreamHub
from gristmill.console.workers import read_workers
from gristmill.db import get_database
from gristmill.jobs.models import Job
from gristmill.jobs.schemas import JobRead
from gristmill.jobs.types import UNFINISHED_STATUSES
from gristmill.settings import Settings

_REDIS_TIMEOUT_SECONDS = 3.0
# A snapshot carries at most this many active jobs (newest first); the dashboard pages the rest.
SNAPSHOT_ACTIVE_JOBS = 200


@dataclass
class Console:
    broker: redis.Redis
    pod_lister: PodLister | None
    hub: StreamHub

    def queues(self) -> QueuesRead:
        return QueuesRead.model_validate({"queues": read_queues(self.broker)}, from_attributes=True)

    def workers(self) -> WorkersRead:
        return WorkersRead.model_validate(read_workers(self.broker, self.pod_lister))

    def close(self) -> None:
        self.broker.close()


def _jobs_json(jobs: list[Job]) -> list[dict[str, Any]]:
    return [JobRead.model_validate(job).model_dump(mode="json") for job in jobs]


def build_console(settings: Settings) -> Console:
    def client(url: str) -> redis.Redis:
        return redis.Redis.from_url(
            url,
            socket_timeout=_REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        )

    broker = client(settings.broker_url)
    console: Console

    def status() -> dict[str, Any]:
        return {
            "queues": console.queues().model_dump(mode="json"),
            "workers": console.workers().model_dump(mode="json"),
        }

    def read_job(job_id: uuid.UUID) -> dict[str, Any] | None:
        with get_database().transaction() as session:
            job = session.get(Job, job_id)
            return JobRead.model_validate(job).model_dump(mode="json") if job else None

    def snapshot(job_id: uuid.UUID | None) -> dict[str, Any]:
        with get_database().transaction() as session:
            if job_id is not None:
                job = session.get(Job, job_id)
                jobs = [job] if job is not None else []
            else:
                jobs = list(
                    session.scalars(
                        select(Job)
                        .where(Job.status.in_([s.value for s in UNFINISHED_STATUSES]))
                        .order_by(Job.created_at.desc(), Job.job_id.desc())
                        .limit(SNAPSHOT_ACTIVE_JOBS)
                    )
                )
            data = {"jobs": _jobs_json(jobs)}
        return data | status()

    hub = StreamHub(
        settings.redis_url.get_secret_value(), snapshot=snapshot, status=status, job=read_job
    )
    console = Console(broker, pod_lister_from_settings(settings), hub)
    return console
