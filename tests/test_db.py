"""Sessions, transactions and what runs after a commit."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from gristmill.db import Database, call_after_commit


def test_every_after_commit_action_runs_even_when_one_fails(
    clean_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("the broker is down")

    with caplog.at_level(logging.ERROR, logger="gristmill.db"):
        with clean_db.transaction() as session:
            session.execute(text("SELECT 1"))
            call_after_commit(session, lambda: ran.append("first"))
            call_after_commit(session, broken)
            call_after_commit(session, lambda: ran.append("last"))
    assert ran == ["first", "broken", "last"]
    assert "an after-commit action failed" in caplog.text
    assert "the broker is down" in caplog.text


def test_after_commit_actions_are_dropped_on_rollback(clean_db: Database) -> None:
    ran: list[str] = []

    def failing_transaction() -> None:
        with clean_db.transaction() as session:
            call_after_commit(session, lambda: ran.append("sent"))
            raise ValueError("rolled back")

    with pytest.raises(ValueError, match="rolled back"):
        failing_transaction()
    with clean_db.transaction() as session:
        session.execute(text("SELECT 1"))
    assert ran == []
