"""Live updates for the console: one Redis subscriber per api process, fanned out to every
connected stream (SSE or WebSocket) through a bounded buffer per connection.

Every message a stream sends is `{"id", "type", "data"}`:
- `job`: one job change from `gristmill.events` (created, status, progress);
- `queues` / `workers`: a fresh snapshot of the queues or the workers, sent when it changes;
- `snapshot`: the state to start from (active jobs, or the one job watched, plus queues and
  workers), sent first and whenever the stream cannot replay what a client missed;
- `resync`: this connection fell behind (its buffer filled) or the subscriber lost Redis; a
  `snapshot` follows.

Ids are `<hub epoch>-<sequence>`. A client that reconnects with the last id it saw gets the
events it missed replayed when the same api process still holds them, else a snapshot: either
way it is back in sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gristmill.events import JOB_EVENTS_CHANNEL, decode_events

logger = logging.getLogger(__name__)

DEFAULT_BUFFER = 1000
DEFAULT_HISTORY = 10_000
STATUS_INTERVAL_SECONDS = 2.0
# Queue and worker snapshots are re-sent at least this often even when nothing changed, so a
# dashboard's "last heartbeat" ages stay honest.
STATUS_REFRESH_SECONDS = 10.0
_RECONNECT_MAX_SECONDS = 5.0
_LOG_INTERVAL_SECONDS = 60.0

SnapshotReader = Callable[[uuid.UUID | None], dict[str, Any]]
StatusReader = Callable[[], dict[str, Any]]
JobReader = Callable[[uuid.UUID], dict[str, Any] | None]


@dataclass(frozen=True)
class StreamMessage:
    id: str
    type: str
    data: dict[str, Any]
    # For job events: which job, and its parent (a stream watching a parent sees its children).
    job_id: str | None = None
    parent_job_id: str | None = None
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "data": self.data}

    def to_json(self) -> str:
        # Serialised once, however many connections send it.
        cached: str | None = self.__dict__.get("_json")
        if cached is None:
            cached = json.dumps(self.as_dict(), separators=(",", ":"), default=str)
            object.__setattr__(self, "_json", cached)
        return cached

    def concerns(self, job_id: str | None) -> bool:
        if job_id is None or self.type != "job":
            return True
        return job_id in (self.job_id, self.parent_job_id)


@dataclass(eq=False)
class Subscription:
    """One connected stream: a bounded buffer, and whether it overflowed since last read."""

    job_id: str | None
    buffer_size: int
    queue: asyncio.Queue[StreamMessage] = field(init=False)
    lagged: bool = False
    dropped: int = 0

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.buffer_size)

    def offer(self, message: StreamMessage) -> None:
        if not message.concerns(self.job_id):
            return
        if self.lagged:  # the snapshot it is about to get covers this
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A slow client never holds up the others: drop what it has not read and tell it
            # to start again from a snapshot.
            self.dropped += self.queue.qsize() + 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.lagged = True
            self.queue.put_nowait(message)  # wakes a reader waiting on the queue

    async def get(self) -> StreamMessage | None:
        """The next message, or None when the buffer overflowed (send a resync and snapshot)."""
        return self._checked(await self.queue.get())

    def get_nowait(self) -> StreamMessage | None | Literal[False]:
        """Like get() without waiting: False when nothing is buffered."""
        try:
            return self._checked(self.queue.get_nowait())
        except asyncio.QueueEmpty:
            return False

    def _checked(self, message: StreamMessage) -> StreamMessage | None:
        if self.lagged:
            self.lagged = False
            while not self.queue.empty():
                self.queue.get_nowait()
            return None
        return message


class StreamHub:
    def __init__(
        self,
        redis_url: str,
        *,
        snapshot: SnapshotReader,
        status: StatusReader,
        job: JobReader,
        buffer_size: int = DEFAULT_BUFFER,
        history: int = DEFAULT_HISTORY,
        status_interval: float = STATUS_INTERVAL_SECONDS,
    ) -> None:
        self._redis_url = redis_url
        self._read_snapshot = snapshot
        self._read_status = status
        self.read_job = job
        self.buffer_size = buffer_size
        self.epoch = secrets.token_hex(4)
        self._sequence = itertools.count(1)
        self.last_seq = 0
        self._history: deque[tuple[int, StreamMessage]] = deque(maxlen=history)
        self._subscriptions: set[Subscription] = set()
        self._status_interval = status_interval
        self._last_status: dict[str, Any] = {}
        self._last_status_sent = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._last_logged: dict[str, float] = {}
        self.connected = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="stream-hub-redis"),
            asyncio.create_task(self._poll_status(), name="stream-hub-status"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    # -- connections -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: uuid.UUID | None) -> AsyncIterator[Subscription]:
        subscription = Subscription(str(job_id) if job_id else None, self.buffer_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def replay_after(
        self, last_event_id: str | None, job_id: str | None
    ) -> list[StreamMessage] | None:
        """The messages after `last_event_id` still held here, or None when they cannot be
        replayed (another process's id, or too old): then the client needs a snapshot."""
        if not last_event_id:
            return None
        epoch, _, raw_seq = last_event_id.partition("-")
        if epoch != self.epoch or not raw_seq.isdigit():
            return None
        seq = int(raw_seq)
        if seq > self.last_seq:
            return None
        oldest = self._history[0][0] if self._history else self.last_seq + 1
        if seq < oldest - 1:
            return None
        return [m for s, m in self._history if s > seq and m.concerns(job_id)]

    async def snapshot(self, job_id: uuid.UUID | None) -> tuple[StreamMessage, float]:
        """A snapshot message and the time its reads started: events published before that
        time are already in it."""
        started = time.time()
        data = await asyncio.to_thread(self._read_snapshot, job_id)
        return StreamMessage(self.current_id(), "snapshot", data), started

    def current_id(self) -> str:
        return f"{self.epoch}-{self.last_seq}"

    # -- fan-out ---------------------------------------------------------------------------

    def publish(self, type_: str, data: dict[str, Any], *, at: float | None = None) -> None:
        seq = next(self._sequence)
        self.last_seq = seq
        job_id = data.get("job_id") if type_ == "job" else None
        parent = data.get("parent_job_id") if type_ == "job" else None
        message = StreamMessage(
            f"{self.epoch}-{seq}",
            type_,
            data,
            job_id,
            parent,
            at if at is not None else time.time(),
        )
        self._history.append((seq, message))
        for subscription in tuple(self._subscriptions):
            subscription.offer(message)

    def _resync_all(self) -> None:
        for subscription in tuple(self._subscriptions):
            subscription.lagged = True
            with contextlib.suppress(asyncio.QueueFull):
                subscription.queue.put_nowait(
                    StreamMessage(self.current_id(), "resync", {"reason": "subscriber reconnected"})
                )

    async def _listen(self) -> None:
        delay = 0.2
        first = True
        while True:
            client = aioredis.Redis.from_url(self._redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(JOB_EVENTS_CHANNEL)
                self.connected.set()
                if not first:
                    # Events published while we were away are lost: everyone starts over.
                    self._resync_all()
                first = False
                delay = 0.2
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    for event in decode_events(message["data"]):
                        self.publish("job", event, at=float(event.get("at") or time.time()))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                # One line, at most once a minute, and no traceback: this runs on the event
                # loop that serves every request, and Redis may stay down for a while.
                self._log_throttled("job events subscriber lost Redis; reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()

    async def _poll_status(self) -> None:
        while True:
            await asyncio.sleep(self._status_interval)
            if not self._subscriptions:
                continue
            try:
                status = await asyncio.to_thread(self._read_status)
            except Exception as exc:
                self._log_throttled("cannot read queues and workers for the streams", exc)
                continue
            now = time.monotonic()
            refresh = now - self._last_status_sent >= STATUS_REFRESH_SECONDS
            for kind, value in status.items():
                if refresh or self._last_status.get(kind) != _comparable(value):
                    self._last_status[kind] = _comparable(value)
                    self.publish(kind, value)
            if refresh:
                self._last_status_sent = now

    def _log_throttled(self, message: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(message, -math.inf) >= _LOG_INTERVAL_SECONDS:
            self._last_logged[message] = now
            logger.warning("%s: %s: %s", message, type(exc).__name__, exc)


def _comparable(value: dict[str, Any]) -> str:
    # Heartbeat ages and read times change on every read; only what an operator would notice
    # (depths, workers up or down, active counts, pods) decides whether to send.
    def strip(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                k: strip(v)
                for k, v in item.items()
                if k
                not in {
                    "heartbeat_age_seconds",
                    "last_heartbeat",
                    "read_at",
                    "age_seconds",
                    "oldest_age_seconds",
                }
            }
        if isinstance(item, list):
            return [strip(v) for v in item]
        return item

    return json.dumps(strip(value), sort_keys=True, default=str)
