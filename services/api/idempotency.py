"""The `Idempotency-Key` header on every route that starts a job.

Semantics of the IETF httpapi draft: the same key with the same request returns the first
response (marked `Idempotent-Replayed: true`); the same key with another request is 422; a
request still in flight with that key is 409. Keys belong to the token that sent them and are
kept 24 hours. The key's answer is recorded in the transaction that starts the job
(gristmill.jobs.idempotency), so a retried request can never start a second job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from gristmill.db import get_database
from gristmill.errors import DomainError, InvalidInputError
from gristmill.jobs import idempotency
from gristmill.jobs.idempotency import KeyClaim, Replay
from gristmill.jobs.intake import JobIntake
from gristmill.jobs.starts import StartedJob, StartRequest
from services.api.deps import CallerDep
from services.api.errors import error_response_for

HEADER = "Idempotency-Key"
# Visible ASCII, as an sf-string holds; quotes around it (the draft's form) are accepted.
_KEY = re.compile(r'^"?([\x21\x23-\x7e]{1,255})"?$')


async def _claim_of(
    request: Request,
    caller: CallerDep,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="A unique key of the client's choosing: resending the same request "
            "with it returns the first response instead of starting another job (24 h).",
        ),
    ] = None,
) -> KeyClaim | None:
    if key is None:
        return None
    found = _KEY.fullmatch(key.strip())
    if found is None:
        raise InvalidInputError(
            f"{HEADER} must be 1 to 255 visible ASCII characters, optionally in double quotes"
        )
    return KeyClaim(
        principal=caller.principal,
        key=found.group(1),
        fingerprint=await _fingerprint(request),
    )


async def _fingerprint(request: Request) -> str:
    body = await request.body()
    try:
        # The same JSON spelled differently is the same request.
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    query = "&".join(sorted(request.url.query.split("&"))) if request.url.query else ""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), query.encode(), canonical):
        digest.update(part + b"\0")
    return digest.hexdigest()


IdempotencyDep = Annotated[KeyClaim | None, Depends(_claim_of)]


def _claim_in_transaction(claim: KeyClaim) -> Replay | None:
    with get_database().transaction() as session:
        return idempotency.claim(session, claim)


def _settle(claim: KeyClaim, error: Exception) -> None:
    """A refused start's answer is kept like any other; an outage frees the key for a retry."""
    with get_database().transaction() as session:
        if isinstance(error, DomainError):
            status_code, body = error_response_for(error)
            idempotency.record(session, claim.principal, claim.key, status_code, body)
        else:
            idempotency.release(session, claim.principal, claim.key)


def started_response(started: StartedJob) -> JSONResponse:
    return JSONResponse(
        started.body(),
        status_code=started.status_code,
        headers={"Location": f"/api/jobs/{started.job.job_id}"},
    )


def _replayed(replay: Replay) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"}
    job_id = replay.body.get("job_id")
    if job_id:
        headers["Location"] = f"/api/jobs/{job_id}"
    return JSONResponse(replay.body, status_code=replay.status_code, headers=headers)


async def start(intake: JobIntake, request: StartRequest, claim: KeyClaim | None) -> JSONResponse:
    """Start `request` through the api's group commit, honouring its Idempotency-Key."""
    if claim is None:
        return started_response(await intake.start(request))
    replay = await run_in_threadpool(_claim_in_transaction, claim)
    if replay is not None:
        return _replayed(replay)
    keyed = dataclasses.replace(request, idempotency_key=(claim.principal, claim.key))
    try:
        started = await intake.start(keyed)
    except Exception as exc:
        await run_in_threadpool(_settle, claim, exc)
        raise
    return started_response(started)


def start_in_session(
    session: Session, claim: KeyClaim | None, start_job: Callable[[], StartedJob]
) -> JSONResponse:
    """The same for a start made in the request's own transaction (a dead letter's re-run)."""
    if claim is None:
        return started_response(start_job())
    replay = _claim_in_transaction(claim)
    if replay is not None:
        return _replayed(replay)
    try:
        started = start_job()
        idempotency.record(session, claim.principal, claim.key, started.status_code, started.body())
    except Exception as exc:
        _settle(claim, exc)
        raise
    return started_response(started)
