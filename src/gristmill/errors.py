"""Domain errors. The api maps each to one HTTP status in one place (services/api/errors.py)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller is expected to handle; the message is safe to show."""


class NotFoundError(DomainError):
    pass


class ConflictError(DomainError):
    """The resource exists but is not in a state that allows this (e.g. cancel a finished job)."""


class InvalidInputError(DomainError):
    pass


class DependencyUnavailableError(DomainError):
    """PostgreSQL or Redis cannot be reached."""


class JobError(Exception):
    """Raised by a job body to say how its job should end; the message is meant for operators.

    The job runtime classifies failures by these classes only, so it knows nothing of the
    scrapers (or any other producer of work) behind them.
    """


class TransientJobError(JobError):
    """Worth retrying later (network trouble, timeouts, 429, 5xx): spends one of the job's
    TASK_MAX_RETRIES, with exponential backoff; `retry_after` (seconds) is honoured."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentJobError(JobError):
    """Retrying will not help: the job fails at once."""


class JobDeferredError(JobError):
    """Not the job's fault and not worth a retry (a platform's circuit breaker is open, a
    rate limit shared by every worker is exhausted): the job goes back to `pending` and is
    sent again after `delay_seconds`, without spending a retry."""

    def __init__(self, message: str, *, delay_seconds: float) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


def quoted(value: str, limit: int = 80) -> str:
    """`value` as repr() quotes it, cut to `limit` characters: error messages name what was
    asked for without echoing a 10,000-character key back."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[: limit - 4]}...'"
