"""The transactional outbox: a committed job always reaches the broker.

The jobs table is the outbox. A pending job with `enqueued_at IS NULL` has no message in the
broker that we know of; once its `run_after` (a retry's backoff) has passed, the relay sends it
and stamps `enqueued_at`. Right after a commit the committing process hands its new jobs to its
own dispatcher, which sends them at once (the fast path); the relay, running in every api and
scheduler process, sends whatever the fast path did not: the process died between commit and
send, the broker was down, a retry came due, the broker lost its data.

The broker's data loss is detected, not guessed: the relay keeps an epoch both in Redis (a key
that vanishes with Redis's data) and in the `broker_epoch` row. When they differ, every pending
job is marked unsent again. Marking a job as sent checks the epoch it was sent under, inside the
same statement, so a mark can never land on a job whose message vanished after the reset.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.db import call_after_commit
from gristmill.jobs.models import UNSENT_PREDICATE, BrokerEpoch, Job, JobRecord
from gristmill.jobs.types import JobStatus

UNSENT = text(UNSENT_PREDICATE)
# Jobs this young are left to the fast path of the process that created them.
FAST_PATH_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class OutboxJob:
    """What sending a job takes; plain values, independent of any session."""

    job_id: uuid.UUID
    job_type: str
    params: dict[str, Any]
    queue: str
    priority: int
    parent_job_id: uuid.UUID | None

    @classmethod
    def of(cls, job: JobRecord) -> OutboxJob:
        return cls(
            job.job_id, job.job_type, dict(job.params), job.queue, job.priority, job.parent_job_id
        )


class Submitter(Protocol):
    def submit(self, jobs: Sequence[OutboxJob]) -> None: ...

    def wait_sent(self, timeout: float) -> bool: ...


_submitter: Submitter | None = None


def use_submitter(submitter: Submitter | None) -> None:
    """Set this process's fast path (its dispatcher); called at process start."""
    global _submitter
    _submitter = submitter


def send_after_commit(session: Session, jobs: Iterable[JobRecord]) -> None:
    """Hand due pending jobs to this process's dispatcher once the transaction commits.

    Without a dispatcher (a test calling the core directly) nothing is sent now; the relay of
    a running api or scheduler sends the jobs within FAST_PATH_GRACE_SECONDS and a cycle."""
    now = utc_now()
    due = [
        OutboxJob.of(job)
        for job in jobs
        if job.status == JobStatus.PENDING.value and (job.run_after is None or job.run_after <= now)
    ]
    submitter = _submitter
    if due and submitter is not None:
        call_after_commit(session, lambda: submitter.submit(due))


def wait_for_sends(timeout: float) -> bool:
    """Wait up to `timeout` seconds until the jobs this process committed so far are handed to
    the broker (or given up on, for the relay to send). The api answers a start after this,
    so the send does not compete with the answer for the interpreter; a slow broker costs
    the answer at most `timeout`."""
    submitter = _submitter
    return submitter.wait_sent(timeout) if submitter is not None else True


def claim_unsent(session: Session, *, limit: int) -> list[OutboxJob]:
    """Lock up to `limit` due unsent jobs, oldest first; concurrent relays take other rows."""
    now = utc_now()
    rows = session.scalars(
        select(Job)
        .where(
            UNSENT,
            or_(Job.run_after.is_(None), Job.run_after <= now),
            Job.created_at <= now - timedelta(seconds=FAST_PATH_GRACE_SECONDS),
        )
        .order_by(Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [OutboxJob.of(job) for job in rows]


_MARK_ENQUEUED = (
    update(Job)
    .where(
        Job.job_id.in_(bindparam("job_ids", expanding=True)),
        UNSENT,
        exists().where(BrokerEpoch.id == 1, BrokerEpoch.epoch == bindparam("epoch")),
    )
    .values(enqueued_at=bindparam("now"))
)


def mark_enqueued(connection: Connection, job_ids: Sequence[uuid.UUID], epoch: str) -> int:
    """Stamp jobs sent under broker `epoch`; a job is left unsent if the epoch changed since.

    One statement, atomic by itself: the fast path runs it on an autocommit connection."""
    if not job_ids:
        return 0
    result = connection.execute(
        _MARK_ENQUEUED, {"job_ids": list(job_ids), "epoch": epoch, "now": utc_now()}
    )
    return int(result.rowcount)


def adopt_broker_epoch(session: Session, epoch: str) -> int | None:
    """Record `epoch` as the broker's; if it differs from the recorded one, the broker lost
    its messages: every pending job becomes unsent again. Returns how many jobs were reset,
    or None when the epoch was already known."""
    known = session.scalar(select(BrokerEpoch.epoch).where(BrokerEpoch.id == 1).with_for_update())
    if known == epoch:
        return None
    now = utc_now()
    statement = pg_insert(BrokerEpoch).values(id=1, epoch=epoch, changed_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[BrokerEpoch.id], set_={"epoch": epoch, "changed_at": now}
        )
    )
    reset = session.execute(
        update(Job)
        .where(Job.status == JobStatus.PENDING.value, Job.enqueued_at.is_not(None))
        # run_after records since when the job is unsent again, for the unsent-age gauge.
        .values(enqueued_at=None, run_after=func.coalesce(Job.run_after, now))
        .execution_options(synchronize_session=False)
    )
    return int(reset.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class UnsentSummary:
    count: int
    oldest_since: datetime | None


def unsent_summary(session: Session) -> UnsentSummary:
    """Due jobs not yet handed to the broker, and since when the oldest one waits."""
    now = utc_now()
    count, oldest = session.execute(
        select(func.count(), func.min(func.coalesce(Job.run_after, Job.created_at))).where(
            UNSENT, or_(Job.run_after.is_(None), Job.run_after <= now)
        )
    ).one()
    return UnsentSummary(int(count), oldest)
