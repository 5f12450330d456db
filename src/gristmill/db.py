"""Database engine and sessions.

The engine is built when a process starts (api lifespan, worker_process_init, beat init), never
at import, so forked worker children never share a connection pool with their parent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from gristmill.settings import Settings

logger = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


_AFTER_COMMIT_KEY = "gristmill_after_commit"


def call_after_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run `callback` once the session's current transaction commits; drop it on rollback.

    This is how Celery messages are sent: a worker must never receive a job id whose row
    it cannot see yet, and a rolled-back job must never be sent.
    """
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    # Every callback runs: one that fails is logged and does not hide the ones after it. What
    # they do is never lost with them: messages of committed jobs are in the outbox (the relay
    # sends them), events are a hint the database can replay.
    for callback in session.info.pop(_AFTER_COMMIT_KEY, []):
        try:
            callback()
        except Exception:
            logger.exception("an after-commit action failed: %r", callback)


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT_KEY, None)


class Database:
    def __init__(self, settings: Settings, *, pool_size: int = 5) -> None:
        self.engine: Engine = create_engine(
            settings.database_url.get_secret_value(),
            pool_size=pool_size,
            max_overflow=10,
            # No ping before each checkout (a round trip per transaction): after a PostgreSQL
            # restart the first statement on a stale connection fails, SQLAlchemy drops every
            # pooled connection, and callers retry (workers) or answer 503 (the api).
            pool_pre_ping=False,
            pool_recycle=1800,
            # Timestamps come back in UTC whatever the server's TimeZone setting is.
            connect_args={"options": "-c timezone=UTC"},
        )
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits when the block ends and rolls back on error."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


_database: Database | None = None


def init_database(settings: Settings, *, pool_size: int = 5) -> Database:
    return use_database(Database(settings, pool_size=pool_size))


def use_database(database: Database) -> Database:
    """Make `database` the one this process uses (tests switch between several)."""
    global _database
    _database = database
    return database


def get_database() -> Database:
    if _database is None:
        raise RuntimeError("the database is not initialised: call init_database() at start-up")
    return _database
