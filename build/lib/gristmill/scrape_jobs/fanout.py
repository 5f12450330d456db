"""Jobs over many accounts: one child job per account; the children complete the parent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.clock import utc_today
from gristmill.jobs.lifecycle import insert_jobs, job_row
from gristmill.jobs.parents import begin_fan_out, parent_result
from gristmill.jobs.runtime import CHILDREN_DECIDE, JobContext, JobResult, JobStoppedError
from gristmill.jobs.types import JobType
from gristmill.metrics.service import accounts_with_activity_gaps

BACKFILL_CHECK_DAYS = 7


def fan_out(
    ctx: JobContext,
    child_type: JobType,
    account_keys: list[str],
    child_params: dict[str, Any] | None = None,
) -> JobResult:
    """Create one child job per account, in the transaction that records how many there are.

    The children are sent after the commit (scrape children many to a message); if this
    process dies first, the outbox relay sends them."""
    if not account_keys:
        return parent_result(0, 0, 0, 0)
    rows = [
        job_row(
            child_type,
            params={"account_key": key, **(child_params or {})},
            account_key=key,
            parent_job_id=ctx.job_id,
        )
        for key in account_keys
    ]
    with ctx.database.transaction() as session:
        if not begin_fan_out(session, ctx.job.owner, len(rows)):
            raise JobStoppedError
        insert_jobs(session, rows)
    return CHILDREN_DECIDE


def active_account_keys(session: Session, platform: str | None = None) -> list[str]:
    query = select(Account.key).where(Account.active.is_(True)).order_by(Account.key)
    if platform is not None:
        query = query.where(Account.platform == platform)
    return list(session.scalars(query))


def scrape_accounts(ctx: JobContext, platform: str | None = None) -> JobResult:
    with ctx.database.transaction() as session:
        keys = active_account_keys(session, platform)
    return fan_out(ctx, JobType.SCRAPE_ACCOUNT, keys)


def backfill_gaps(ctx: JobContext) -> JobResult:
    """Start a 7-day backfill for every account missing per-day activity in the last 7 days."""
    with ctx.database.transaction() as session:
        ids = accounts_with_activity_gaps(session, days=BACKFILL_CHECK_DAYS, today=utc_today())
        keys = list(
            session.scalars(select(Account.key).where(Account.id.in_(ids)).order_by(Account.key))
        )
    return fan_out(ctx, JobType.BACKFILL_ACCOUNT, keys, {"days": BACKFILL_CHECK_DAYS})
