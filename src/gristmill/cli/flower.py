"""`gristmill flower`: Flower (the Celery monitoring UI) on FLOWER_PORT behind basic auth.

Run through Gristmill's Celery app so Flower sees the same broker, queues and priority lists as
the workers; the credentials come from Settings and are handed over in memory, never on a
command line that `ps` would show.
"""

from __future__ import annotations

import typer

from gristmill.cli.client import CliError
from gristmill.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("flower")(flower)


def flower() -> None:
    """Serve Flower on FLOWER_PORT with FLOWER_BASIC_AUTH (user:password)."""
    settings = get_settings()
    if settings.flower_basic_auth is None:
        raise CliError(
            "FLOWER_BASIC_AUTH is not set: Flower shows every task's arguments, so it only runs "
            "behind basic auth; set FLOWER_BASIC_AUTH=user:password"
        )
    # Imported here: the other commands start faster without Celery.
    from gristmill.celery_app import celery_app, configure_celery
    from gristmill.logging import configure_logging

    configure_logging(settings)
    configure_celery(settings)
    celery_app.start(
        argv=[
            "flower",
            f"--port={settings.flower_port}",
            f"--basic-auth={settings.flower_basic_auth.get_secret_value()}",
            # State lives in memory: a restarted Flower rebuilds it from worker events.
            "--persistent=False",
        ]
    )
