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
