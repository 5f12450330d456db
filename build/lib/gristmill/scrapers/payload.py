"""Typed access to decoded JSON; bad shapes raise PermanentScrapeError, clearly."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gristmill.scrapers.base import PermanentScrapeError

# Python 3.11's fromisoformat accepts at most 6 fractional digits; some servers send 9.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def malformed(subject: str, what: str) -> PermanentScrapeError:
    return PermanentScrapeError(f"{subject}: malformed response: {what}")


def as_object(value: Any, subject: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise malformed(subject, f"{what} is {type(value).__name__}, expected an object")
    return value


def as_list(value: Any, subject: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise malformed(subject, f"{what} is {type(value).__name__}, expected a list")
    return value


def int_field(obj: Mapping[str, Any], key: str, subject: str, *, default: int | None = None) -> int:
    """A non-negative integer field; `default` applies when the key is absent/null."""
    value = obj.get(key)
    if value is None and default is not None:
        return default
    # bool is an int subclass; a true/false count means the payload is not what we
    # think.
    if not isinstance(value, int) or isinstance(value, bool):
        if key not in obj:
            raise malformed(subject, f"missing field {key!r}")
        raise malformed(subject, f"field {key!r} is {value!r}, expected an integer")
    return max(0, value)


def str_field(obj: Mapping[str, Any], key: str, subject: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        if key not in obj:
            raise malformed(subject, f"missing field {key!r}")
        raise malformed(subject, f"field {key!r} is {value!r}, expected a non-empty string")
    return value


def parse_timestamp(value: Any, subject: str, key: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (naive taken as UTC)."""
    if not isinstance(value, str):
        raise malformed(subject, f"field {key!r} is {value!r}, expected an ISO 8601 timestamp")
    text = _LONG_FRACTION.sub(r"\1", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise malformed(subject, f"field {key!r} is not an ISO 8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
