"""The plain peer of Gristmill's start endpoint: FastAPI, one INSERT, one `send_task`.

What a competent team writes without a job framework: a sync route, a pooled SQLAlchemy
engine, one row per job, a Celery message after the commit. `make bench` runs it under the
same uvicorn command line as Gristmill's api and compares requests per second and latency.

    uvicorn bench.plain_api:create_app --factory   (env: DATABASE_URL, CELERY_BROKER_URL)
"""

from __future__ import annotations

import os
import uuid

from celery import Celery
from fastapi import FastAPI
from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine, func, insert
from sqlalchemy.dialects.postgresql import JSONB, UUID

QUEUE = "plain-bench"
TASK_NAME = "bench.noop"

metadata = MetaData()
plain_jobs = Table(
    "plain_jobs",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("params", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)


def create_app() -> FastAPI:
    engine = create_engine(os.environ["DATABASE_URL"], pool_size=10, max_overflow=10)
    metadata.create_all(engine)
    celery = Celery("plain", broker=os.environ["CELERY_BROKER_URL"])
    app = FastAPI()

    @app.post("/jobs/{account_key}", status_code=202)
    def start_job(account_key: str, sent_at: float | None = None) -> dict[str, str]:
        # `sent_at` (the client's clock, same machine) only rides along to the task, which
        # records how long after it the task started (the end-to-end latency peer).
        job_id = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(
                insert(plain_jobs).values(
                    job_id=job_id, status="pending", params={"account_key": account_key}
                )
            )
        kwargs: dict[str, object] = {"account_key": account_key}
        if sent_at is not None:
            kwargs["sent_at"] = sent_at
        celery.send_task(TASK_NAME, kwargs=kwargs, task_id=str(job_id), queue=QUEUE)
        return {"job_id": str(job_id), "status": "pending"}

    return app
