from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict


class SnapshotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    date: date
    followers: int
    following: int
    posts: int
    captured_at: datetime


class DailyActivityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    date: date
    posts: int
    likes: int
    reposts: int
    replies: int


class AccountMetrics(BaseModel):
    account_key: str
    snapshots: list[SnapshotRead]
    daily: list[DailyActivityRead]
