from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gristmill.scrapers import DailyActivity, Post, aggregate_daily, window_start


def _post(uri: str, created_at: datetime, **counts: int) -> Post:
    return Post(
        uri=uri,
        created_at=created_at,
        is_reply=bool(counts.pop("reply", 0)),
        likes=counts.get("likes", 0),
        reposts=counts.get("reposts", 0),
        replies=counts.get("replies", 0),
    )


def test_window_start_is_midnight_utc_of_first_day() -> None:
    assert window_start(3, date(2024, 3, 10)) == datetime(2024, 3, 8, tzinfo=UTC)
    assert window_start(1, date(2024, 3, 10)) == datetime(2024, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize("days", [0, -1])
def test_window_needs_at_least_one_day(days: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        window_start(days, date(2024, 3, 10))
    with pytest.raises(ValueError, match="at least 1"):
        aggregate_daily([], days, date(2024, 3, 10))


def test_empty_window_is_all_zero_days_in_ascending_order() -> None:
    rows = aggregate_daily([], 3, date(2024, 1, 1))
    assert rows == [
        DailyActivity(date(2023, 12, 30), 0, 0, 0, 0),
        DailyActivity(date(2023, 12, 31), 0, 0, 0, 0),
        DailyActivity(date(2024, 1, 1), 0, 0, 0, 0),
    ]


def test_counts_sum_by_utc_date_and_ignore_outside_and_duplicates() -> None:
    plus_two = timezone(timedelta(hours=2))
    posts = [
        _post("a", datetime(2024, 3, 10, 12, tzinfo=UTC), likes=5, reposts=1, replies=2),
        # 01:30 at +02:00 is 23:30 UTC the day before.
        _post("b", datetime(2024, 3, 10, 1, 30, tzinfo=plus_two), likes=3, reply=1),
        _post("c", datetime(2024, 3, 9, 0, 0, tzinfo=UTC), likes=1),
        _post("c", datetime(2024, 3, 9, 0, 0, tzinfo=UTC), likes=1),  # seen twice
        _post("d", datetime(2024, 3, 7, 23, 59, 59, tzinfo=UTC), likes=100),  # too old
        _post("e", datetime(2024, 3, 11, 0, 0, tzinfo=UTC), likes=100),  # after today
    ]
    assert aggregate_daily(posts, 2, date(2024, 3, 10)) == [
        DailyActivity(date(2024, 3, 9), posts=2, likes=4, reposts=0, replies=0),
        DailyActivity(date(2024, 3, 10), posts=1, likes=5, reposts=1, replies=2),
    ]


def test_window_covers_exactly_n_days_ending_today() -> None:
    rows = aggregate_daily([], 30, date(2024, 3, 1))
    assert len(rows) == 30
    assert rows[0].date == date(2024, 2, 1)
    assert rows[-1].date == date(2024, 3, 1)
