"""The api service: `uvicorn services.api.app:create_app --factory` (see the Procfile)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gristmill import __version__
from gristmill.celery_app import configure_celery
from gristmill.db import init_database
from gristmill.events import init_event_publisher
from gristmill.gc_tuning import tune_for_serving
from gristmill.jobs.dispatch import start_dispatcher, stop_dispatcher
from gristmill.jobs.intake import JobIntake
from gristmill.logging import configure_logging
from gristmill.observability.publish import install_publish_metrics
from gristmill.settings import Settings, get_settings
from services.api.body_limit import BodySizeLimitMiddleware
from services.api.console import build_console
from services.api.errors import install_error_handlers
from services.api.routes import (
    accounts,
    console,
    health,
    jobs,
    metrics,
    platforms,
    session,
    streams,
)
from services.api.routes.dashboard import install_dashboard


class MissingTokenError(RuntimeError):
    pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.api_tokens:
        raise MissingTokenError(
            "no API token configured: set API_TOKENS to a comma-separated list of secret "
            "bearer tokens, e.g. API_TOKENS=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'); `make run` generates a dev token for you"
        )
    configure_logging(settings)
    configure_celery(settings)
    install_publish_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = init_database(settings, pool_size=10)
        init_event_publisher(settings.redis_url.get_secret_value())
        start_dispatcher(settings, lambda: database, relay=True)
        app.state.job_intake = JobIntake(lambda: database)
        state = build_console(settings)
        app.state.console = state
        await state.hub.start()
        tune_for_serving()
        try:
            yield
        finally:
            await state.hub.stop()
            state.close()
            app.state.job_intake.stop()
            stop_dispatcher()
            database.dispose()

    app = FastAPI(
        title="Gristmill",
        version=__version__,
        description="Background scraping jobs for social-media account metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.api_max_body_bytes)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(jobs.router)
    app.include_router(accounts.router)
    app.include_router(platforms.router)
    app.include_router(console.router)
    app.include_router(streams.router)
    app.include_router(session.router)
    install_dashboard(app)
    return app
