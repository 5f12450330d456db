"""Opaque keyset cursors for newest-first listings: (created_at, id) of the last item served."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from gristmill.errors import InvalidInputError


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, item_id = base64.urlsafe_b64decode(padded).decode().split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, uuid.UUID(item_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            "cursor is not valid; use next_cursor from a previous page"
        ) from exc


MAX_PAGE_SIZE = 200
T = TypeVar("T")


def newest_first_page(
    session: Session,
    query: Select[T],
    created_at: InstrumentedAttribute[datetime],
    item_id: InstrumentedAttribute[uuid.UUID],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[T], str | None]:
    """One page of `query`, newest first, by keyset: page N costs what page 1 costs."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    if cursor is not None:
        after_created, after_id = decode_cursor(cursor)
        query = query.where(tuple_(created_at, item_id) < tuple_(after_created, after_id))
    query = query.order_by(created_at.desc(), item_id.desc()).limit(limit + 1)
    items = list(session.scalars(query))
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    last = items[-1]
    return items, encode_cursor(getattr(last, created_at.key), getattr(last, item_id.key))
