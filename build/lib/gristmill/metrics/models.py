from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from gristmill.db import Base


class MetricSnapshot(Base):
    """Followers, following and posts of an account as seen on one UTC date (last scrape wins)."""

    __tablename__ = "metric_snapshots"

    account_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    followers: Mapped[int] = mapped_column(BigInteger)
    following: Mapped[int] = mapped_column(BigInteger)
    posts: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DailyActivityRow(Base):
    """What an account posted on one UTC date, and the current reactions to those posts."""

    __tablename__ = "daily_activity"

    account_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    posts: Mapped[int] = mapped_column(BigInteger)
    likes: Mapped[int] = mapped_column(BigInteger)
    reposts: Mapped[int] = mapped_column(BigInteger)
    replies: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
