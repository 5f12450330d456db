"""Idempotency keys for starts (the IETF httpapi Idempotency-Key draft's semantics).

A client that sends a start with a key it chose may send it again, after a timeout or a lost
connection, and get the first answer back instead of a second job. A key is claimed in its own
short transaction before the start runs (so a concurrent request with the same key sees it in
flight and gets 409); the start's answer is recorded in the very transaction that starts the
job, so a job and the answer naming it commit together. Keys are scoped to the token that sent
them and kept 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.errors import ConflictError, InvalidInputError
from gristmill.jobs.models import IdempotencyKey

KEY_TTL = timedelta(hours=24)
# A request that died holding its key (its process was killed) gives the key up after this.
IN_FLIGHT_TIMEOUT = timedelta(seconds=60)
# status_code of a key whose request is still running.
IN_FLIGHT = 0


class IdempotencyKeyInFlightError(ConflictError):
    """A request with the same key is still being processed."""


class IdempotencyKeyReusedError(InvalidInputError):
    """The key was used for a different request."""


@dataclass(frozen=True)
class KeyClaim:
    principal: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]


def claim(session: Session, claim: KeyClaim) -> Replay | None:
    """Take the key for this request (None: go on and start), or return the answer the first
    request with this key got. Raises if the key is in flight or was used for another request."""
    now = utc_now()
    taken = session.execute(
        insert(IdempotencyKey)
        .values(principal=claim.principal, key=claim.key, **_in_flight(claim, now))
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).first()
    if taken is not None:
        return None
    row = session.scalars(
        select(IdempotencyKey)
        .where(IdempotencyKey.principal == claim.principal, IdempotencyKey.key == claim.key)
        .with_for_update()
    ).first()
    if row is None or row.created_at < now - KEY_TTL:
        _take_over(session, claim)
        return None
    if row.fingerprint != claim.fingerprint:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was already used for a different request; use a new key"
        )
    if row.status_code == IN_FLIGHT:
        if row.created_at < now - IN_FLIGHT_TIMEOUT:
            _take_over(session, claim)
            return None
        raise IdempotencyKeyInFlightError(
            "a request with this Idempotency-Key is still in progress; retry shortly"
        )
    return Replay(row.status_code, dict(row.response))


def _take_over(session: Session, claim: KeyClaim) -> None:
    taken_over = _in_flight(claim, utc_now())
    session.execute(
        insert(IdempotencyKey)
        .values(principal=claim.principal, key=claim.key, **taken_over)
        .on_conflict_do_update(
            index_elements=[IdempotencyKey.principal, IdempotencyKey.key], set_=taken_over
        )
    )


def _in_flight(claim: KeyClaim, now: datetime) -> dict[str, Any]:
    """A key taken by a request that has not answered yet."""
    return {
        "fingerprint": claim.fingerprint,
        "status_code": IN_FLIGHT,
        "response": {},
        "created_at": now,
    }


def record(
    session: Session, principal: str, key: str, status_code: int, body: dict[str, Any]
) -> None:
    """Store the answer the request with this key got."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.principal == principal, IdempotencyKey.key == key)
        .values(status_code=status_code, response=body)
    )


def release(session: Session, principal: str, key: str) -> None:
    """Give the key up (the request failed in a way worth retrying, e.g. a 503)."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.principal == principal,
            IdempotencyKey.key == key,
            IdempotencyKey.status_code == IN_FLIGHT,
        )
    )


def delete_expired(session: Session) -> int:
    deleted = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < utc_now() - KEY_TTL)
    )
    return int(deleted.rowcount)  # type: ignore[attr-defined]
