"""Database commands: create-db, migrate, wait-for-db (run by make, the chart's migration Job)."""

from __future__ import annotations

import time

import typer
from rich.console import Console

from gristmill.settings import get_settings

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("create-db")(create_db)
    app.command("migrate")(migrate)
    app.command("wait-for-db")(wait_for_db)


def _database_url() -> str:
    return get_settings().database_url.get_secret_value()


def create_db() -> None:
    """Create the database named in DATABASE_URL if it does not exist."""
    from gristmill.migrations import runner  # alembic: only for the commands that need it

    created = runner.create_database(_database_url())
    console.print("database created" if created else "database already exists")


def migrate() -> None:
    """Apply every pending migration (alembic upgrade head). Safe to run again."""
    from gristmill.migrations import runner

    runner.upgrade(_database_url())
    console.print("database schema is up to date")


def wait_for_db(
    timeout: float = typer.Option(300, help="Give up after this many seconds."),
) -> None:
    """Wait until the database answers and its schema is at the latest migration."""
    from gristmill.migrations import runner

    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            if runner.current_revision_is_head(_database_url()):
                console.print("database schema is ready")
                return
            last_error = "schema is not at the latest migration yet"
        except Exception as exc:  # the database may not accept connections yet
            last_error = type(exc).__name__
        time.sleep(2)
    console.print(f"database not ready after {timeout:g}s: {last_error}")
    raise typer.Exit(code=1)
