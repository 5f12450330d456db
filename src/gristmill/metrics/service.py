"""Collected metrics, written as upserts keyed by (account, UTC date): no double counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gristmill.accounts.models import Account
from gristmill.accounts.service import get_account
from gristmill.errors import InvalidInputError
from gristmill.metrics.models import DailyActivityRow, MetricSnapshot
from gristmill.metrics.schemas import AccountMetrics, DailyActivityRead, SnapshotRead
from gristmill.scrapers import DailyActivity, ProfileSnapshot

MAX_RANGE_DAYS = 3660


@dataclass(frozen=True)
class SnapshotWrite:
    account_id: int
    captured_at: datetime
    profile: ProfileSnapshot


_SNAPSHOT_INSERT = insert(MetricSnapshot)
_SAVE_SNAPSHOT = _SNAPSHOT_INSERT.on_conflict_do_update(
    index_elements=[MetricSnapshot.account_id, MetricSnapshot.date],
    set_={
        "followers": _SNAPSHOT_INSERT.excluded.followers,
        "following": _SNAPSHOT_INSERT.excluded.following,
        "posts": _SNAPSHOT_INSERT.excluded.posts,
        "captured_at": _SNAPSHOT_INSERT.excluded.captured_at,
    },
)


def save_snapshots(session: Session, snapshots: Sequence[SnapshotWrite]) -> None:
    """Store each account's profile numbers for the UTC date of its capture (last one wins)."""
    if not snapshots:
        return
    rows = [
        {
            "account_id": item.account_id,
            "date": item.captured_at.date(),
            "followers": item.profile.followers,
            "following": item.profile.following,
            "posts": item.profile.posts,
            "captured_at": item.captured_at,
        }
        for item in snapshots
    ]
    session.connection().execute(_SAVE_SNAPSHOT, rows)


def save_daily_activity(
    session: Session, account_id: int, days: Sequence[DailyActivity], captured_at: datetime
) -> None:
    if not days:
        return
    rows = [
        {
            "account_id": account_id,
            "date": day.date,
            "posts": day.posts,
            "likes": day.likes,
            "reposts": day.reposts,
            "replies": day.replies,
            "captured_at": captured_at,
        }
        for day in days
    ]
    statement = insert(DailyActivityRow)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[DailyActivityRow.account_id, DailyActivityRow.date],
            set_={
                "posts": statement.excluded.posts,
                "likes": statement.excluded.likes,
                "reposts": statement.excluded.reposts,
                "replies": statement.excluded.replies,
                "captured_at": statement.excluded.captured_at,
            },
        ),
        rows,
    )


def read_account_metrics(
    session: Session, account_key: str, *, start: date | None, end: date | None
) -> AccountMetrics:
    if start is not None and end is not None:
        if start > end:
            raise InvalidInputError(f"'from' ({start}) must not be after 'to' ({end})")
        if end - start > timedelta(days=MAX_RANGE_DAYS):
            raise InvalidInputError(f"date range is longer than {MAX_RANGE_DAYS} days")
    account = get_account(session, account_key)
    snapshots = select(MetricSnapshot).where(MetricSnapshot.account_id == account.id)
    daily = select(DailyActivityRow).where(DailyActivityRow.account_id == account.id)
    if start is not None:
        snapshots = snapshots.where(MetricSnapshot.date >= start)
        daily = daily.where(DailyActivityRow.date >= start)
    if end is not None:
        snapshots = snapshots.where(MetricSnapshot.date <= end)
        daily = daily.where(DailyActivityRow.date <= end)
    return AccountMetrics(
        account_key=account.key,
        snapshots=[
            SnapshotRead.model_validate(row)
            for row in session.scalars(snapshots.order_by(MetricSnapshot.date))
        ],
        daily=[
            DailyActivityRead.model_validate(row)
            for row in session.scalars(daily.order_by(DailyActivityRow.date))
        ],
    )


def accounts_with_activity_gaps(session: Session, *, days: int, today: date) -> list[int]:
    """Active accounts missing a daily-activity row for any of the `days` dates ending today."""
    first = today - timedelta(days=days - 1)
    covered = (
        select(DailyActivityRow.account_id)
        .where(DailyActivityRow.date.between(first, today))
        .group_by(DailyActivityRow.account_id)
        .having(func.count() >= days)
    )
    query = (
        select(Account.id)
        .where(Account.active.is_(True), Account.id.not_in(covered))
        .order_by(Account.id)
    )
    return list(session.scalars(query))
