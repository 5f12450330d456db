from __future__ import annotations

import ast
from pathlib import Path

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


def test_process_files_and_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_METRICS_PORT", "SCHEDULER_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert (settings.worker_metrics_port, settings.scheduler_metrics_port) == (9808, 9809)
    assert settings.prometheus_multiproc_dir is None
    assert str(settings.worker_heartbeat_file) == "/tmp/gristmill-worker.heartbeat"
    assert str(settings.beat_heartbeat_file) == "/tmp/gristmill-beat.heartbeat"
    assert str(settings.beat_schedule_file) == "/tmp/gristmill-beat-schedule"

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    assert Settings(_env_file=None).prometheus_multiproc_dir is None
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp/metrics")
    monkeypatch.setenv("SCHEDULER_METRICS_PORT", "0")
    settings = Settings(_env_file=None)
    assert str(settings.prometheus_multiproc_dir) == "/tmp/metrics"
    assert settings.scheduler_metrics_port == 0


def test_metrics_port_out_of_range_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_METRICS_PORT", "70000")
    with pytest.raises(ValidationError, match="worker_metrics_port"):
        Settings(_env_file=None)


def _environment_reads(path: Path) -> list[str]:
    """`os.environ[...]` loads, `os.environ.get(...)` and `os.getenv(...)` in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and ast.unparse(node) in {
            "os.environ.get",
            "os.getenv",
            "os.environ.setdefault",
        }:
            found.append(f"{path}:{node.lineno}")
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        ):
            found.append(f"{path}:{node.lineno}")
    return found


def test_nothing_reads_the_environment_behind_settings_back() -> None:
    root = Path(__file__).resolve().parents[1]
    files = [*(root / "src" / "gristmill").rglob("*.py"), *(root / "services").rglob("*.py")]
    reads = [read for path in files for read in _environment_reads(path)]
    assert reads == [], "read these through a Settings field instead"
