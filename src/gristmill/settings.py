"""All configuration, read once from the environment.

Every field name is the environment variable of the same name in upper case (the README
table lists them). Validation fails fast with a message that names the variable.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gristmill.cron import parse_cron

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gristmill"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def parse_nameserver(value: str) -> tuple[str, int]:
    """`"10.0.0.53"`, `"10.0.0.53:5353"`, `"[fd00::53]:53"` -> (address, port)."""
    text = value.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(
            f"SCRAPER_DNS_NAMESERVER {value!r} must be an IP address with an optional port, "
            "e.g. 10.0.0.53 or 10.0.0.53:5353"
        ) from None
    if not 0 < number < 65536:
        raise ValueError(f"SCRAPER_DNS_NAMESERVER {value!r}: port {number} is out of range")
    return host, number


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    redis_url: SecretStr = SecretStr(DEFAULT_REDIS_URL)
    celery_broker_url: SecretStr | None = None
    celery_result_backend: SecretStr | None = None

    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_read_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # The api answers 413 to a larger request body before reading it (services/api/body_limit).
    # Gristmill's own bodies are a few hundred bytes; 1 MiB leaves room and bounds memory.
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024)

    daily_scrape_cron: str = "0 2 * * *"
    # Sundays 03:00: start 7-day backfills for accounts missing per-day activity.
    backfill_check_cron: str = "0 3 * * 0"
    # Daily: old finished jobs and expired idempotency keys.
    cleanup_cron: str = "30 3 * * *"
    job_retention_days: int = Field(default=30, ge=1)
    cleanup_batch_size: int = Field(default=1000, ge=1)

    task_max_retries: int = Field(default=3, ge=0)
    # A job whose worker dies under it (SIGKILL, OOM) is sent again this many times.
    task_max_worker_losses: int = Field(default=3, ge=0)
    # A job killed at its hard time limit is sent again only this many times.
    task_max_hard_timeouts: int = Field(default=1, ge=0)
    retry_backoff_base_seconds: float = Field(default=60, gt=0)
    retry_backoff_max_seconds: float = Field(default=600, gt=0)

    # Soft limit: the job ends `failed` with a timeout message and keeps partial results.
    # Hard limit: Celery kills the process. Hard must exceed soft.
    scrape_soft_time_limit_seconds: float = Field(default=300, gt=0)
    scrape_hard_time_limit_seconds: float = Field(default=360, gt=0)
    backfill_soft_time_limit_seconds: float = Field(default=1800, gt=0)
    backfill_hard_time_limit_seconds: float = Field(default=1900, gt=0)
    maintenance_soft_time_limit_seconds: float = Field(default=600, gt=0)
    maintenance_hard_time_limit_seconds: float = Field(default=660, gt=0)

    # A running job whose heartbeat is older than this is taken for orphaned (its worker died)
    # and is sent again.
    job_heartbeat_interval_seconds: float = Field(default=5, gt=0)
    job_heartbeat_timeout_seconds: float = Field(default=45, gt=0)
    orphan_check_interval_seconds: float = Field(default=20, gt=0)
    # How often the outbox relay (in api and scheduler processes) sends due unsent jobs.
    outbox_relay_interval_seconds: float = Field(default=1, gt=0)
    # A message a worker took but never acknowledged (its pod was killed) goes back to its
    # queue after this long. Duplicates are harmless (the claim skips them), so it is short.
    broker_visibility_timeout_seconds: float = Field(default=45, ge=5)
    health_check_interval_seconds: float = Field(default=300, gt=0)

    scraper_allow_private_networks: bool = False
    scraper_timeout_seconds: float = Field(default=10, gt=0)
    scraper_concurrency: int = Field(default=200, ge=1)
    fanout_batch_size: int = Field(default=200, ge=1)
    # Where platform host names are looked up ("host" or "host:port"); unset = the system
    # resolver. Either way the address that passed the SSRF check is the one connected to.
    scraper_dns_nameserver: str | None = None

    # Shared by every worker replica, per platform host (token bucket in Redis). 0 = no limit.
    # Mastodon allows 300 requests per 5 minutes per client address by default; Bluesky's
    # public AppView 3000 per 5 minutes.
    scraper_mastodon_requests_per_second: float = Field(default=1.0, ge=0)
    scraper_mastodon_burst: int = Field(default=20, ge=1)
    scraper_bluesky_requests_per_second: float = Field(default=10.0, ge=0)
    scraper_bluesky_burst: int = Field(default=50, ge=1)
    # Waits up to this long are awaited inside the request; a longer one defers the job.
    scraper_max_throttle_wait_seconds: float = Field(default=2.0, ge=0)
    # Circuit breaker per platform host: this many failures (5xx, timeouts, connection
    # errors) within the window open it; 0 disables it.
    scraper_breaker_failure_threshold: int = Field(default=5, ge=0)
    scraper_breaker_window_seconds: float = Field(default=60, gt=0)
    scraper_breaker_open_seconds: float = Field(default=30, gt=0)
    scraper_breaker_max_open_seconds: float = Field(default=600, gt=0)

    log_level: str = "INFO"
    log_json: bool = True

    # Process-local files and ports of the worker and beat (the chart mounts /tmp as an
    # emptyDir: the only writable path of its read-only containers). Port 0 disables metrics.
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    # Celery task events (task-received/-started/-succeeded...) cost the worker's main process
    # a broker publish per event, about a third of its CPU per job. Off by default as in Celery:
    # Flower (and celery-exporter) switch them on in every worker while they run.
    worker_send_task_events: bool = False
    # A pool process is replaced once its resident memory passes this many MiB (checked after
    # each task; 0: never). Not every N tasks: a child's memory stays flat (about 110 MB after
    # 5,000 scrapes), and Celery delays the job it hands to a child retiring on a task count by
    # up to 5 s (celery/celery#9579). 300 fits three processes in the chart's 1 GiB limit.
    worker_max_memory_per_child_mb: int = Field(default=300, ge=0)
    scheduler_metrics_port: int = Field(default=9809, ge=0, le=65535)
    # Where a worker's pool processes keep their metric files; unset: a fresh directory under
    # the temp dir. When set it must belong to one worker alone (its files are deleted at start).
    prometheus_multiproc_dir: Path | None = None
    worker_heartbeat_file: Path = Path("/tmp/gristmill-worker.heartbeat")
    beat_heartbeat_file: Path = Path("/tmp/gristmill-beat.heartbeat")
    beat_schedule_file: Path = Path("/tmp/gristmill-beat-schedule")

    # The console. A browser session (cookie) lasts this long after signing in with a token.
    console_session_hours: float = Field(default=12, gt=0, le=24 * 30)
    # Set by Kubernetes in every pod: when present, /api/workers also lists the worker pods.
    kubernetes_service_host: str | None = None
    kubernetes_service_port: int = Field(default=443, ge=1, le=65535)
    # Namespace of the worker pods; empty means the api pod's own namespace.
    kubernetes_namespace: str | None = None
    worker_pod_selector: str = "app.kubernetes.io/component=worker"

    # Flower (the `flower` process): its port and HTTP basic auth "user:password".
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_basic_auth: SecretStr | None = None

    # The CLI's api commands: where the api is and the bearer token to send.
    gristmill_url: str = "http://127.0.0.1:8000"
    gristmill_token: SecretStr | None = None

    @field_validator("api_tokens", "api_read_tokens", mode="before")
    @classmethod
    def _tokens_from_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("prometheus_multiproc_dir", mode="before")
    @classmethod
    def _empty_dir_is_unset(cls, value: Any) -> Any:
        # `PROMETHEUS_MULTIPROC_DIR=` (empty) means "not set", as prometheus_client reads it.
        return None if value == "" else value

    @field_validator("scraper_dns_nameserver")
    @classmethod
    def _valid_nameserver(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_nameserver(value)
        return value.strip()

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_colon_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        pairs = [pair for pair in value.get_secret_value().split(",") if pair]
        if not pairs or any(
            ":" not in pair or pair.startswith(":") or pair.endswith(":") for pair in pairs
        ):
            raise ValueError("must be user:password (comma-separated for several users)")
        return value

    @field_validator("daily_scrape_cron", "backfill_check_cron", "cleanup_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)
        return value

    @model_validator(mode="after")
    def _hard_limits_exceed_soft(self) -> Settings:
        for kind in ("scrape", "backfill", "maintenance"):
            soft = getattr(self, f"{kind}_soft_time_limit_seconds")
            hard = getattr(self, f"{kind}_hard_time_limit_seconds")
            if hard <= soft:
                raise ValueError(
                    f"{kind.upper()}_HARD_TIME_LIMIT_SECONDS ({hard}) must be greater than "
                    f"{kind.upper()}_SOFT_TIME_LIMIT_SECONDS ({soft})"
                )
        if self.job_heartbeat_timeout_seconds < 3 * self.job_heartbeat_interval_seconds:
            raise ValueError(
                "JOB_HEARTBEAT_TIMEOUT_SECONDS must be at least 3 x JOB_HEARTBEAT_INTERVAL_SECONDS,"
                " or slow but live jobs are taken for orphans"
            )
        if self.scraper_breaker_max_open_seconds < self.scraper_breaker_open_seconds:
            raise ValueError(
                "SCRAPER_BREAKER_MAX_OPEN_SECONDS must be at least SCRAPER_BREAKER_OPEN_SECONDS"
            )
        if self.retry_backoff_max_seconds < self.retry_backoff_base_seconds:
            raise ValueError(
                "RETRY_BACKOFF_MAX_SECONDS must be at least RETRY_BACKOFF_BASE_SECONDS"
            )
        return self

    @property
    def broker_url(self) -> str:
        return (self.celery_broker_url or self.redis_url).get_secret_value()

    @property
    def result_backend_url(self) -> str:
        return (self.celery_result_backend or self.redis_url).get_secret_value()

    @property
    def longest_hard_time_limit_seconds(self) -> float:
        return max(
            self.scrape_hard_time_limit_seconds,
            self.backfill_hard_time_limit_seconds,
            self.maintenance_hard_time_limit_seconds,
        )

    def token_scope(self, token: str) -> str | None:
        """Return "write", "read" or None for an unknown token (compared in constant time)."""
        given = token.encode()
        write = [hmac.compare_digest(given, t.get_secret_value().encode()) for t in self.api_tokens]
        read = [
            hmac.compare_digest(given, t.get_secret_value().encode()) for t in self.api_read_tokens
        ]
        if any(write):
            return "write"
        if any(read):
            return "read"
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
