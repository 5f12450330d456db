"""Push updates: `GET /api/events` (Server-Sent Events) and `/api/ws` (WebSocket).

Both send the messages of `gristmill.console.streams` (see that module and the README's
"Streams" section): a `snapshot` first (or the missed events when resuming), then `job`,
`queues` and `workers` messages as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.websockets import WebSocketState

from gristmill.console.streams import StreamHub, StreamMessage, Subscription
from gristmill.errors import InvalidInputError
from services.api.auth import authenticate
from services.api.deps import ReadAuth
from services.api.errors import ForbiddenError, UnauthorizedError

router = APIRouter(prefix="/api", tags=["streams"])

KEEPALIVE_SECONDS = 15.0
MAX_BATCH = 200
SSE_RETRY_MS = 2000


def _hub(app: object) -> StreamHub:
    hub: StreamHub = app.state.console.hub  # type: ignore[attr-defined]
    return hub


def _parse_job_id(raw: str | None) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidInputError(f"job_id {raw[:64]!r} is not a UUID") from exc


async def stream_batches(
    hub: StreamHub, job_id: uuid.UUID | None, last_event_id: str | None
) -> AsyncIterator[list[StreamMessage] | None]:
    """What one connection sends, in order, in batches of what was waiting together (so a busy
    stream costs one write per batch, not per message); None means "nothing for a while"."""
    job_key = str(job_id) if job_id else None
    async with hub.subscribe(job_id) as subscription:
        # Subscribed before reading the snapshot, so nothing falls between the two.
        replay = hub.replay_after(last_event_id, job_key)
        skip_before = 0.0
        if replay is None:
            snapshot, skip_before = await hub.snapshot(job_id)
            yield [snapshot]
        else:
            for start in range(0, len(replay), MAX_BATCH):
                yield [await _enriched(hub, m, job_id) for m in replay[start : start + MAX_BATCH]]
        while True:
            waiting = await _next(subscription)
            if waiting is None:
                yield None
                continue
            batch: list[StreamMessage] = []
            while True:
                if isinstance(waiting, str) or waiting.type == "resync":
                    # Fell behind (or the hub lost Redis): start again from a snapshot.
                    if batch:
                        yield batch
                        batch = []
                    resync = (
                        StreamMessage(hub.current_id(), "resync", {"reason": "client too slow"})
                        if isinstance(waiting, str)
                        else waiting
                    )
                    snapshot, skip_before = await hub.snapshot(job_id)
                    yield [resync, snapshot]
                # A job change older than the snapshot this connection was sent is already in it.
                elif not (waiting.type == "job" and waiting.at < skip_before):
                    batch.append(await _enriched(hub, waiting, job_id))
                if len(batch) >= MAX_BATCH:
                    break
                raw = subscription.get_nowait()
                if raw is False:
                    break
                waiting = "lagged" if raw is None else raw
            if batch:
                yield batch


async def _next(subscription: Subscription) -> StreamMessage | str | None:
    # The common case, a message already waiting, costs no timer and no task.
    waiting = subscription.get_nowait()
    message: StreamMessage | None
    if waiting is False:
        try:
            message = await asyncio.wait_for(subscription.get(), timeout=KEEPALIVE_SECONDS)
        except TimeoutError:
            return None
    else:
        message = waiting
    return "lagged" if message is None else message


async def _enriched(
    hub: StreamHub, message: StreamMessage, job_id: uuid.UUID | None
) -> StreamMessage:
    # A stream watching one job gets that job's full record (result, error) with each of its
    # changes; the unfiltered stream stays light enough for thousands of changes a second.
    if job_id is None or message.type != "job" or message.job_id != str(job_id):
        return message
    job = await asyncio.to_thread(hub.read_job, job_id)
    if job is None:
        return message
    return StreamMessage(
        message.id,
        message.type,
        message.data | {"job": job},
        message.job_id,
        message.parent_job_id,
        message.at,
    )


def _sse(message: StreamMessage) -> str:
    return f"id: {message.id}\nevent: {message.type}\ndata: {message.to_json()}\n\n"


@router.get(
    "/events",
    dependencies=[ReadAuth],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream."}},
)
async def events(
    request: Request,
    job_id: Annotated[
        str | None, Query(max_length=64, description="Only this job (and its children).")
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    resume: Annotated[
        str | None, Query(max_length=64, description="Same as Last-Event-ID.")
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events: `snapshot`, then `job`, `queues`, `workers` (and `resync`) events.
    Reconnect with `Last-Event-ID` to resume; comments keep idle connections open."""
    hub = _hub(request.app)
    watched = _parse_job_id(job_id)

    async def body() -> AsyncIterator[str]:
        yield f"retry: {SSE_RETRY_MS}\n\n"
        async for batch in stream_batches(hub, watched, last_event_id or resume):
            yield ": keep-alive\n\n" if batch is None else "".join(_sse(m) for m in batch)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        # no-transform / X-Accel-Buffering: proxies (nginx ingress) must not buffer the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


@router.websocket("/ws")
async def websocket(
    socket: WebSocket,
    job_id: str | None = None,
    last_event_id: str | None = None,
) -> None:
    """WebSocket: the same messages as `/api/events`, one JSON text frame each."""
    settings = socket.app.state.settings
    try:
        authenticate(settings, "GET", socket.headers, socket.cookies)
        watched = _parse_job_id(job_id)
    except (UnauthorizedError, ForbiddenError, InvalidInputError) as exc:
        # 1008 (policy violation) with the reason; the handshake is refused before accepting.
        await socket.close(code=1008, reason=str(exc)[:120])
        return
    await socket.accept()
    hub = _hub(socket.app)
    sender = asyncio.create_task(_send_all(socket, hub, watched, last_event_id))
    try:
        # Clients send nothing the server needs; reading notices a disconnect at once.
        while True:
            await socket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def _send_all(
    socket: WebSocket, hub: StreamHub, job_id: uuid.UUID | None, last_event_id: str | None
) -> None:
    async for batch in stream_batches(hub, job_id, last_event_id):
        if socket.application_state != WebSocketState.CONNECTED:
            return
        # None: nothing for a while; a ping keeps proxies from closing an idle socket. Several
        # messages waiting together go out as one frame holding a JSON array of them.
        if batch is None:
            await socket.send_text('{"type":"ping"}')
        elif len(batch) == 1:
            await socket.send_text(batch[0].to_json())
        else:
            await socket.send_text("[" + ",".join(m.to_json() for m in batch) + "]")
