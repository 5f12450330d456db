"""structlog set-up shared by the three services: JSON lines in production, readable locally."""

from __future__ import annotations

import logging
import sys

import structlog

from gristmill.settings import Settings


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # The console renderer formats exceptions itself; JSON needs the traceback as a string,
    # or a record logged with exc_info (Celery's "Unrecoverable error", logger.exception)
    # keeps only the exception's repr and loses where it happened.
    exceptions: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info] if settings.log_json else []
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *exceptions,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: a line per account scraped (5 % of a worker's CPU in a
    # scrape-all) repeating what the job's result and metrics say. Its warnings still show.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
