"""Log lines as the services write them: JSON in production keeps a traceback's text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from gristmill.logging import configure_logging
from gristmill.settings import Settings


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, config = list(root.handlers), root.level, structlog.get_config()
    yield
    root.handlers, root.level = handlers, level
    structlog.configure(**config)


def _fail() -> None:
    raise ZeroDivisionError("division by zero")


@pytest.mark.usefixtures("restored_logging")
def test_json_lines_carry_the_traceback_of_stdlib_and_structlog_records(
    test_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(test_settings.model_copy(update={"log_json": True}))
    try:
        _fail()
    except ZeroDivisionError:
        # Celery's own records come through the stdlib; ours through structlog.
        logging.getLogger("celery.worker").critical("Unrecoverable error", exc_info=True)
        structlog.get_logger().exception("task body failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["Unrecoverable error", "task body failed"]
    for line in lines:
        assert "exc_info" not in line
        assert line["exception"].startswith("Traceback (most recent call last):")
        assert "in _fail" in line["exception"]
        assert line["exception"].endswith("ZeroDivisionError: division by zero")


@pytest.mark.usefixtures("restored_logging")
def test_httpx_request_lines_are_left_out_but_its_warnings_are_kept(
    test_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    try:
        configure_logging(test_settings.model_copy(update={"log_json": True, "log_level": "INFO"}))
        httpx_logger.info('HTTP Request: GET https://mastodon.example/api/v1/accounts "200 OK"')
        httpx_logger.warning("something httpx wants said")
        logging.getLogger("gristmill.jobs").info("a line of ours")
    finally:
        httpx_logger.setLevel(level)
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ["something httpx wants said", "a line of ours"]
