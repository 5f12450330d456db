from __future__ import annotations

import pytest
from pydantic import ValidationError

from gristmill.settings import DEFAULT_DATABASE_URL, Settings


def test_defaults_match_the_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "API_TOKENS", "CELERY_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url.get_secret_value() == DEFAULT_DATABASE_URL
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.result_backend_url == "redis://127.0.0.1:6379/0"
    assert settings.daily_scrape_cron == "0 2 * * *"
    assert (settings.job_retention_days, settings.task_max_retries) == (30, 3)
    assert (settings.retry_backoff_base_seconds, settings.retry_backoff_max_seconds) == (60, 600)
    assert settings.scraper_allow_private_networks is False
    assert settings.api_tokens == []


def test_tokens_are_comma_separated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKENS", "first-secret-token, two")
    monkeypatch.setenv("API_READ_TOKENS", "reader")
    settings = Settings(_env_file=None)
    assert settings.token_scope("two") == "write"
    assert settings.token_scope("reader") == "read"
    assert settings.token_scope("three") is None
    assert "first-secret-token" not in repr(settings)


def test_broker_and_backend_default_to_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://redis.example:6379/2")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://other:6379/3")
    settings = Settings(_env_file=None)
    assert settings.broker_url == "redis://redis.example:6379/2"
    assert settings.result_backend_url == "redis://other:6379/3"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("JOB_RETENTION_DAYS", "0", "job_retention_days"),
        ("TASK_MAX_RETRIES", "many", "task_max_retries"),
        ("SCRAPE_HARD_TIME_LIMIT_SECONDS", "10", "SCRAPE_HARD_TIME_LIMIT_SECONDS"),
        ("RETRY_BACKOFF_MAX_SECONDS", "1", "RETRY_BACKOFF_MAX_SECONDS"),
    ],
)
def test_invalid_settings_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)
