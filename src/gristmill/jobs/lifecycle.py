"""Every job state transition, in one place: create, claim, progress, end, dead-letter, cancel.

Single jobs, fan-out batches and the api all go through these functions; nothing else writes a
job's status. Each write is guarded by the status it expects, and a worker's writes are fenced by
the attempt that owns the job (`attempts`), so a cancel, a finishing worker and an attempt that
was presumed dead can race without one overwriting another. Callers own the transaction: these
functions only execute statements, and register what must happen after the commit (job-change
events, sending messages).

The statements are Core statements on the jobs table, built once at import where they can be:
SQLAlchemy compiles them once and the ORM's per-statement work is skipped. They return rows
(`JobRecord`), read like `Job` objects.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CTE,
    Boolean,
    Connection,
    DateTime,
    Executable,
    Integer,
    Row,
    Select,
    String,
    Uuid,
    bindparam,
    case,
    column,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.clock import utc_now
from gristmill.events import JobChange, publish_jobs, publish_jobs_now
from gristmill.jobs import outbox
from gristmill.jobs.models import ACTIVE_DEDUPE_PREDICATE, JOBS, DeadLetter
from gristmill.jobs.parents import count_ended_children
from gristmill.jobs.types import (
    CHILD_PRIORITY,
    CHILD_QUEUE,
    JOB_TYPES,
    UNFINISHED_STATUSES,
    Attempt,
    JobStatus,
    JobType,
)

JobRow = Row[Any]
_C = JOBS.c
_RUNNING = JobStatus.RUNNING.value
_UNFINISHED = [status.value for status in UNFINISHED_STATUSES]

# --- building and inserting jobs -------------------------------------------------------------


def dedupe_key(job_type: JobType, params: dict[str, Any]) -> str:
    """The identity of a start: same type and parameters, same key."""
    canonical = json.dumps([job_type.value, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_row(
    job_type: JobType,
    *,
    params: dict[str, Any] | None = None,
    account_key: str | None = None,
    parent_job_id: uuid.UUID | None = None,
    retry_of_job_id: uuid.UUID | None = None,
    deduplicate: bool = False,
) -> dict[str, Any]:
    """The one way to build a new pending job's row (single starts and fan-out children)."""
    spec = JOB_TYPES[job_type]
    params = params or {}
    child_scrape = parent_job_id is not None and job_type is JobType.SCRAPE_ACCOUNT
    return {
        "job_id": uuid.uuid4(),
        "job_type": job_type.value,
        "status": JobStatus.PENDING.value,
        "progress": 0,
        "params": params,
        "account_key": account_key,
        "parent_job_id": parent_job_id,
        "retry_of_job_id": retry_of_job_id,
        # Fan-out children go to the bulk queue, behind what people start by hand.
        "queue": (CHILD_QUEUE if child_scrape else spec.queue).value,
        "priority": CHILD_PRIORITY if parent_job_id is not None else spec.priority,
        "attempts": 0,
        "dedupe_key": dedupe_key(job_type, params) if deduplicate else None,
    }


_INSERT = (
    pg_insert(JOBS)
    .on_conflict_do_nothing(
        index_elements=[_C.dedupe_key], index_where=text(ACTIVE_DEDUPE_PREDICATE)
    )
    .returning(JOBS)
)


# The api's starts, inserted by one statement whatever their number: each column travels as
# an array (unnest), so the statement's text, compiled once, never depends on the count. With
# each row goes whether its account must be active. The arrays are unbounded types, not the
# table's: a cast to VARCHAR(64)[] would silently cut an over-long account key down to one that
# may exist, where the insert into the table refuses it.
_START_TYPES: dict[str, Any] = {
    "job_id": Uuid,
    "job_type": String,
    "status": String,
    "progress": Integer,
    "params": JSONB,
    "account_key": String,
    "parent_job_id": Uuid,
    "retry_of_job_id": Uuid,
    "queue": String,
    "priority": Integer,
    "attempts": Integer,
    "dedupe_key": String,
    "needs_active": Boolean,
}
_START_COLUMNS = [name for name in _START_TYPES if name != "needs_active"]
_STARTS = (
    func.unnest(*(bindparam(name, type_=ARRAY(t)) for name, t in _START_TYPES.items()))
    .table_valued(*(column(name, t) for name, t in _START_TYPES.items()))
    .render_derived(name="start")
)
_INSERT_STARTS = (
    pg_insert(JOBS)
    .from_select(
        _START_COLUMNS,
        select(*(_STARTS.c[name] for name in _START_COLUMNS)).where(
            or_(
                _STARTS.c.account_key.is_(None),
                exists().where(
                    Account.key == _STARTS.c.account_key,
                    or_(Account.active, ~_STARTS.c.needs_active),
                ),
            )
        ),
    )
    .on_conflict_do_nothing(
        index_elements=[_C.dedupe_key], index_where=text(ACTIVE_DEDUPE_PREDICATE)
    )
    .returning(JOBS)
)


def insert_jobs(
    session: Session,
    rows: Sequence[dict[str, Any]],
    *,
    needs_active: Sequence[bool] | None = None,
) -> list[JobRow]:
    """Insert pending jobs and send them once the transaction commits.

    A row whose `dedupe_key` matches a job that is still pending or running is skipped (the
    partial unique index decides, so two concurrent starts cannot both get in); the returned
    list holds only the rows inserted. With `needs_active` (one flag per row, the api's
    starts), a row naming an account is inserted only if that account exists, and is active
    where its flag says so: the check and the insert are one statement, one round trip.
    """
    if not rows:
        return []
    if needs_active is None:
        statement: Executable = _INSERT
        parameters: Any = list(rows)
    else:
        statement = _INSERT_STARTS
        parameters = {name: [row[name] for row in rows] for name in _START_COLUMNS}
        parameters["needs_active"] = list(needs_active)
    jobs = list(session.connection().execute(statement, parameters))
    publish_jobs(session, jobs, JobChange.CREATED)
    outbox.send_after_commit(session, jobs)
    return jobs


def back_to_pending(run_after: Any) -> dict[str, Any]:
    """The values that put a job back to pending and unsent, due at `run_after` (also since
    when it is unsent, which the unsent-age gauge reads): the relay sends it when it is due."""
    return {
        "status": JobStatus.PENDING.value,
        "heartbeat_at": None,
        "enqueued_at": None,
        "run_after": run_after,
    }


# --- a worker's transitions ------------------------------------------------------------------

# Which jobs a delivery may claim, and what claiming one does; the bulk and the one-job claim
# below share both. A stray early delivery of a job waiting out its retry backoff does not run
# it; the relay sends it when it is due.
_CLAIMABLE = (
    _C.status == JobStatus.PENDING.value,
    or_(_C.run_after.is_(None), _C.run_after <= bindparam("now")),
)
_CLAIMED_VALUES = {
    "status": _RUNNING,
    "started_at": func.coalesce(_C.started_at, bindparam("now")),
    "attempts": _C.attempts + 1,
    "heartbeat_at": bindparam("now"),
}
_CLAIM = (
    update(JOBS)
    .where(_C.job_id.in_(bindparam("ids", expanding=True)), *_CLAIMABLE)
    .values(_CLAIMED_VALUES)
    .returning(JOBS)
)


def claim_jobs(session: Session, job_ids: Sequence[uuid.UUID]) -> list[JobRow]:
    """Move pending jobs to running. A job that is not pending (cancelled, already running
    elsewhere, finished) is not returned, so a duplicate delivery does nothing."""
    if not job_ids:
        return []
    claimed = list(session.connection().execute(_CLAIM, {"ids": list(job_ids), "now": utc_now()}))
    publish_jobs(session, claimed, JobChange.STATUS)
    return claimed


_ACCOUNTS = Account.__table__.c
_CLAIMED = (
    update(JOBS)
    .where(_C.job_id == bindparam("c_job_id"), *_CLAIMABLE)
    .values(_CLAIMED_VALUES)
    .returning(JOBS)
    .cte("claimed")
)
# One job claimed together with the account it is about (if any), in one round trip.
_CLAIM_ONE = select(
    _CLAIMED,
    _ACCOUNTS.id.label("account_id"),
    _ACCOUNTS.platform.label("account_platform"),
    _ACCOUNTS.handle.label("account_handle"),
    _ACCOUNTS.base_url.label("account_base_url"),
).select_from(_CLAIMED.outerjoin(Account.__table__, _ACCOUNTS.key == _CLAIMED.c.account_key))


def claim_one(connection: Connection, job_id: uuid.UUID) -> JobRow | None:
    """Claim one job on an autocommit connection: one statement and one round trip, which
    returns the job's columns and its account's (`account_id`, `account_platform`,
    `account_handle`, `account_base_url`; None when it has no account or it was deleted).
    The claim is committed when this returns; its event is published at once."""
    claimed = connection.execute(_CLAIM_ONE, {"c_job_id": job_id, "now": utc_now()}).first()
    if claimed is not None:
        publish_jobs_now([claimed], JobChange.STATUS)
    return claimed


_OWNED = (
    tuple_(_C.job_id, _C.attempts).in_(bindparam("owners", expanding=True)),
    _C.status == _RUNNING,
)
_BEAT = update(JOBS).where(*_OWNED).values(heartbeat_at=bindparam("now")).returning(_C.job_id)
_OWNED_IDS = select(_C.job_id).where(*_OWNED)


def still_owned(session: Session, attempts: Sequence[Attempt], *, beat: bool) -> set[uuid.UUID]:
    """Which of these attempts still own a running job (optionally refreshing heartbeats).

    The others were cancelled or handed to another worker: their work must stop."""
    if not attempts:
        return set()
    owners = [(a.job_id, a.attempt) for a in attempts]
    if beat:
        rows = session.connection().execute(_BEAT, {"owners": owners, "now": utc_now()})
    else:
        rows = session.connection().execute(_OWNED_IDS, {"owners": owners})
    return {row.job_id for row in rows}


_PROGRESS = (
    update(JOBS)
    .where(_C.job_id == bindparam("p_job_id"), _C.attempts == bindparam("p_attempt"))
    .where(_C.status == _RUNNING)
    .values(
        progress=func.greatest(_C.progress, bindparam("p_progress", type_=Integer)),
        result=func.coalesce(bindparam("p_result", type_=JSONB), _C.result),
        heartbeat_at=bindparam("p_now"),
    )
    .returning(JOBS)
)


def report_progress(
    session: Session, owner: Attempt, progress: int, result: dict[str, Any] | None
) -> bool:
    """Record progress (it never goes down); False if the attempt no longer owns the job."""
    job = (
        session.connection()
        .execute(
            _PROGRESS,
            {
                "p_job_id": owner.job_id,
                "p_attempt": owner.attempt,
                "p_progress": min(max(progress, 0), 100),
                "p_result": result,
                "p_now": utc_now(),
            },
        )
        .first()
    )
    if job is None:
        return False
    publish_jobs(session, [job], JobChange.PROGRESS)
    return True


@dataclass(frozen=True)
class Ending:
    """How one attempt ends its job."""

    owner: Attempt
    status: JobStatus
    result: dict[str, Any] | None = None
    error: str | None = None


def _finish_values(status: Any, result: Any, error: Any, now: Any) -> dict[str, Any]:
    return {
        "status": status,
        "completed_at": now,
        "progress": case((status == JobStatus.COMPLETED.value, 100), else_=_C.progress),
        "result": func.coalesce(result, _C.result),
        "error_message": func.coalesce(error, _C.error_message),
        "heartbeat_at": None,
    }


_FINISH_ONE = (
    update(JOBS)
    .where(_C.job_id == bindparam("f_job_id"), _C.attempts == bindparam("f_attempt"))
    .where(_C.status == _RUNNING)
    .values(
        _finish_values(
            bindparam("f_status", type_=String),
            bindparam("f_result", type_=JSONB),
            bindparam("f_error", type_=String),
            bindparam("f_now", type_=DateTime(timezone=True)),
        )
    )
    .returning(JOBS)
)
_ENDINGS = values(
    column("job_id", Uuid),
    column("attempt", Integer),
    column("status", String),
    column("result", JSONB),
    column("error", String),
    name="ending",
)


def finish_jobs(session: Session, endings: Sequence[Ending]) -> list[JobRow]:
    """End running jobs; returns the jobs this call really ended.

    A job that was cancelled or taken over meanwhile is left alone and not returned, so the
    caller writes nothing more for it. Fan-out parents of the ended jobs are updated."""
    if not endings:
        return []
    connection = session.connection()
    if len(endings) == 1:
        (ending,) = endings
        parameters = {
            "f_job_id": ending.owner.job_id,
            "f_attempt": ending.owner.attempt,
            "f_status": ending.status.value,
            "f_result": ending.result,
            "f_error": ending.error,
            "f_now": utc_now(),
        }
        ended = list(connection.execute(_FINISH_ONE, parameters))
    else:
        # Ordered by id: batches and cancels lock rows in the same order.
        rows = _ENDINGS.data(
            [
                (e.owner.job_id, e.owner.attempt, e.status.value, e.result, e.error)
                for e in sorted(endings, key=lambda e: e.owner.job_id)
            ]
        )
        statement = (
            update(JOBS)
            .where(_C.job_id == rows.c.job_id, _C.attempts == rows.c.attempt)
            .where(_C.status == _RUNNING)
            .values(_finish_values(rows.c.status, rows.c.result, rows.c.error, utc_now()))
            .returning(JOBS)
        )
        ended = list(connection.execute(statement))
    publish_jobs(session, ended, JobChange.STATUS)
    count_ended_children(session, ended)
    return ended


def fused_finish(write: Callable[[CTE], CTE]) -> Select[Any]:
    """A statement that ends one job (the parameters of `finish_one`) and, in the same
    statement, makes the write `write(ended)` builds from the ended row: nothing is written
    unless the job really ended. Build it once, at import; `finish_one` runs it."""
    ended = _FINISH_ONE.cte("ended")
    return select(ended).add_cte(write(ended))


def finish_one(
    connection: Connection,
    ending: Ending,
    statement: Executable = _FINISH_ONE,
    parameters: dict[str, Any] | None = None,
) -> JobRow | None:
    """End one job on an autocommit connection, in one round trip (with a `fused_finish`
    statement, together with its write). Its event is published at once; counting it in a
    fan-out parent is the caller's (a separate transaction)."""
    ended = connection.execute(
        statement,
        {
            "f_job_id": ending.owner.job_id,
            "f_attempt": ending.owner.attempt,
            "f_status": ending.status.value,
            "f_result": ending.result,
            "f_error": ending.error,
            "f_now": utc_now(),
            **(parameters or {}),
        },
    ).first()
    if ended is not None:
        publish_jobs_now([ended], JobChange.STATUS)
    return ended


def dead_letter_jobs(session: Session, endings: Sequence[Ending]) -> list[JobRow]:
    """Fail jobs for good and put them in the dead-letter queue."""
    failed = [Ending(e.owner, JobStatus.FAILED, e.result, e.error) for e in endings]
    ended = finish_jobs(session, failed)
    if ended:
        session.connection().execute(
            insert(DeadLetter),
            [
                {
                    "job_id": job.job_id,
                    "job_type": job.job_type,
                    "account_key": job.account_key,
                    "error_message": job.error_message or "failed",
                    "attempts": job.attempts,
                }
                for job in ended
            ],
        )
    return ended


# --- people's transitions ----------------------------------------------------------------

_LOCK_CHILDREN = (
    select(_C.job_id)
    .where(_C.parent_job_id == bindparam("job_id"), _C.status.in_(_UNFINISHED))
    .order_by(_C.job_id)
    .with_for_update()
)


def cancel_job_tree(session: Session, job_id: uuid.UUID) -> JobRow | None:
    """Cancel a pending or running job and its unfinished children; None if it had ended.

    A pending job is cancelled at once; a running one stops within about a second (its worker
    notices) and nothing more is written for it."""
    connection = session.connection()
    # Children first, in id order, then the job, then its parent: the order workers lock them.
    connection.execute(_LOCK_CHILDREN, {"job_id": job_id})
    cancelled = {
        "status": JobStatus.CANCELLED.value,
        "completed_at": utc_now(),
        "heartbeat_at": None,
    }
    job = connection.execute(
        update(JOBS)
        .where(_C.job_id == job_id, _C.status.in_(_UNFINISHED))
        .values(**cancelled)
        .returning(JOBS)
    ).first()
    if job is None:
        return None
    children = list(
        connection.execute(
            update(JOBS)
            .where(_C.parent_job_id == job_id, _C.status.in_(_UNFINISHED))
            .values(**cancelled)
            .returning(JOBS)
        )
    )
    publish_jobs(session, [job, *children], JobChange.STATUS)
    count_ended_children(session, children)
    count_ended_children(session, [job])
    return job
