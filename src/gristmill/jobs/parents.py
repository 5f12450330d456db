"""Fan-out parents: their child counters, progress, completion and the one shape of their result.

Each ending child adds to its parent's counters in one UPDATE (O(1) per child, whatever the
number of children), so thousands of children ending one by one cost no recount. The parent
row's lock serialises concurrent endings in several processes; callers lock children before
their parent, the same order as a cancel, so the two cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, exists, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased

from gristmill.clock import utc_now
from gristmill.events import JobChange, publish_jobs
from gristmill.jobs.models import JOBS, Job, JobRecord
from gristmill.jobs.types import UNFINISHED_STATUSES, Attempt, JobStatus

MAX_LISTED_FAILURES = 1000
_C = JOBS.c
_RUNNING = JobStatus.RUNNING.value


def parent_result(
    total: int,
    succeeded: int,
    failed: int,
    cancelled: int,
    failures: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """What a fan-out parent reports, while it runs and once it has ended."""
    return {
        "accounts_total": total,
        "succeeded": succeeded,
        "failed": failed,
        "cancelled": cancelled,
        "failures": list(failures),
    }


_BEGIN_FAN_OUT = (
    update(JOBS)
    .where(_C.job_id == bindparam("b_job_id"), _C.attempts == bindparam("b_attempt"))
    .where(_C.status == _RUNNING)
    .values(
        # Bind names must differ from column names in an UPDATE.
        children_total=bindparam("b_total"),
        result=bindparam("b_result", type_=JSONB),
        heartbeat_at=bindparam("b_now"),
    )
    .returning(_C.job_id)
)


def begin_fan_out(session: Session, owner: Attempt, total: int) -> bool:
    """Record that the parent job `owner` holds has `total` children; False if the job is no
    longer this attempt's (then no child may be created)."""
    started = (
        session.connection()
        .execute(
            _BEGIN_FAN_OUT,
            {
                "b_job_id": owner.job_id,
                "b_attempt": owner.attempt,
                "b_total": total,
                "b_result": parent_result(total, 0, 0, 0),
                "b_now": utc_now(),
            },
        )
        .first()
    )
    return started is not None


def count_ended_children(session: Session, ended: Sequence[JobRecord]) -> None:
    """Add children that just ended to their parents' counters; complete finished parents."""
    tallies: dict[uuid.UUID, Counter[str]] = {}
    for job in ended:
        if job.parent_job_id is not None:
            tallies.setdefault(job.parent_job_id, Counter())[job.status] += 1
    for parent_id in sorted(tallies):
        tally = tallies[parent_id]
        add_to_parent(
            session,
            parent_id,
            succeeded=tally[JobStatus.COMPLETED.value],
            failed=tally[JobStatus.FAILED.value],
            cancelled=tally[JobStatus.CANCELLED.value],
        )


def _add(name: str) -> Any:
    return bindparam(name, type_=Integer)


_ENDED = _C.children_succeeded + _C.children_failed + _C.children_cancelled
_ADDED = _add("succeeded") + _add("failed") + _add("cancelled")
_ADD_TO_PARENT = (
    update(JOBS)
    .where(_C.job_id == bindparam("parent_id"), _C.children_total.is_not(None))
    .values(
        children_succeeded=_C.children_succeeded + _add("succeeded"),
        children_failed=_C.children_failed + _add("failed"),
        children_cancelled=_C.children_cancelled + _add("cancelled"),
        progress=case(
            (
                and_(_C.status == _RUNNING, _C.children_total > 0),
                func.greatest(_C.progress, (_ENDED + _ADDED) * 100 // _C.children_total),
            ),
            else_=_C.progress,
        ),
        heartbeat_at=case((_C.status == _RUNNING, bindparam("now")), else_=_C.heartbeat_at),
        result=func.jsonb_build_object(
            "accounts_total",
            _C.children_total,
            "succeeded",
            _C.children_succeeded + _add("succeeded"),
            "failed",
            _C.children_failed + _add("failed"),
            "cancelled",
            _C.children_cancelled + _add("cancelled"),
            "failures",
            func.coalesce(_C.result["failures"], func.jsonb_build_array()),
        ),
    )
    .returning(JOBS)
)


def add_to_parent(
    session: Session, parent_id: uuid.UUID, *, succeeded: int, failed: int, cancelled: int
) -> None:
    parent = (
        session.connection()
        .execute(
            _ADD_TO_PARENT,
            {
                "parent_id": parent_id,
                "succeeded": succeeded,
                "failed": failed,
                "cancelled": cancelled,
                "now": utc_now(),
            },
        )
        .first()
    )
    if parent is None or parent.children_total is None or parent.status != _RUNNING:
        return
    done = parent.children_succeeded + parent.children_failed + parent.children_cancelled
    if done >= parent.children_total:
        complete_parent(session, parent)
    else:
        publish_jobs(session, [parent], JobChange.PROGRESS)


def complete_parent(session: Session, parent: JobRecord) -> None:
    """End a running parent whose children have all ended: `failed` only if none succeeded."""
    connection = session.connection()
    failures = [
        {"account_key": key, "error": error}
        for key, error in connection.execute(
            select(_C.account_key, _C.error_message)
            .where(_C.parent_job_id == parent.job_id, _C.status == JobStatus.FAILED.value)
            .order_by(_C.account_key)
            .limit(MAX_LISTED_FAILURES)
        )
    ]
    succeeded, failed = parent.children_succeeded, parent.children_failed
    cancelled = parent.children_cancelled
    status, error = JobStatus.COMPLETED, None
    if succeeded == 0 and failed > 0:
        status, error = JobStatus.FAILED, f"all {failed} accounts failed"
    elif succeeded == 0 and cancelled > 0:
        status = JobStatus.CANCELLED
    ended = connection.execute(
        update(JOBS)
        .where(_C.job_id == parent.job_id, _C.status == _RUNNING)
        .values(
            status=status.value,
            progress=100 if status is JobStatus.COMPLETED else _C.progress,
            completed_at=utc_now(),
            error_message=error,
            heartbeat_at=None,
            result=parent_result(
                parent.children_total or 0, succeeded, failed, cancelled, failures
            ),
        )
        .returning(JOBS)
    ).first()
    if ended is not None:
        publish_jobs(session, [ended], JobChange.STATUS)


def settle_stranded_parents(session: Session) -> list[uuid.UUID]:
    """Safety net run with the orphan check: a running parent none of whose children is
    unfinished is recounted once and completed. Normal endings never need it; it repairs
    counters after a manual database edit or a child deleted by hand."""
    child = aliased(Job)
    stranded = list(
        session.scalars(
            select(Job)
            .where(
                Job.status == _RUNNING,
                Job.children_total.is_not(None),
                ~exists().where(
                    and_(
                        child.parent_job_id == Job.job_id,
                        child.status.in_([s.value for s in UNFINISHED_STATUSES]),
                    )
                ),
            )
            .with_for_update(skip_locked=True)
        )
    )
    for parent in stranded:
        counts: dict[str, int] = dict(
            session.execute(
                select(Job.status, func.count())
                .where(Job.parent_job_id == parent.job_id)
                .group_by(Job.status)
            ).all()
        )
        parent.children_succeeded = counts.get(JobStatus.COMPLETED.value, 0)
        parent.children_failed = counts.get(JobStatus.FAILED.value, 0)
        parent.children_cancelled = counts.get(JobStatus.CANCELLED.value, 0)
        # Children deleted by hand no longer count towards the total.
        parent.children_total = sum(counts.values())
        session.flush()
        complete_parent(session, parent)
    return [parent.job_id for parent in stranded]
