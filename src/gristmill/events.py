"""Job change events, published to Redis once the transaction that made the change commits.

Every process that changes jobs (api, workers, scheduler) publishes; every api replica
subscribes to `JOB_EVENTS_CHANNEL` and forwards to its stream clients (SSE and WebSocket), so a
job run by any worker shows on a stream served by any replica. Redis pub/sub keeps nothing:
a subscriber that was away resynchronises from the database (the api sends a snapshot).

Publishing never slows or fails the work that changed the job: messages go through a bounded
in-process queue drained by one daemon thread, and are dropped (and counted) when Redis is down
or the queue is full. The database stays the truth; events are a fast hint of it.

Wire format of one Redis message (UTF-8 JSON):

    {"events": [{"change": "created" | "status" | "progress",
                 "job_id": "<uuid>", "job_type": "scrape_account", "status": "running",
                 "progress": 40, "account_key": "alice" | null,
                 "parent_job_id": "<uuid>" | null, "at": 1764380000.123}, ...]}
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from prometheus_client import Counter
from sqlalchemy.orm import Session

from gristmill.db import call_after_commit
from gristmill.jobs.models import JobRecord

logger = logging.getLogger(__name__)

JOB_EVENTS_CHANNEL = "gristmill:job-events"
# Events from one commit go out as one message; a fan-out of 10,000 children is split so no
# message grows past what a subscriber decodes in a few milliseconds.
MAX_EVENTS_PER_MESSAGE = 500
_QUEUE_LIMIT = 10_000
_REDIS_TIMEOUT_SECONDS = 1.0
# After the first event of a quiet spell the publisher waits this long and sends what came in
# meanwhile in one pipeline: a busy worker publishes a few times a second per process instead
# of twice per job (each publish wakes the thread and costs a round trip).
_LINGER_SECONDS = 0.02
_ERROR_LOG_INTERVAL_SECONDS = 60.0


@functools.cache
def events_dropped() -> Counter:
    # Made when a publisher is, not at import: a worker imports this module before its
    # prometheus multiprocess directory exists, and an unlabelled counter writes at once.
    return Counter(
        "gristmill_job_events_dropped",
        "Job change events not published (Redis unreachable or the publish queue full).",
    )


class JobChange(StrEnum):
    CREATED = "created"
    STATUS = "status"
    PROGRESS = "progress"


@dataclass(frozen=True)
class JobEvent:
    change: JobChange
    job_id: uuid.UUID
    job_type: str
    status: str
    progress: int
    account_key: str | None
    parent_job_id: uuid.UUID | None

    def as_dict(self, at: float) -> dict[str, Any]:
        return {
            "change": self.change.value,
            "job_id": str(self.job_id),
            "job_type": self.job_type,
            "status": self.status,
            "progress": self.progress,
            "account_key": self.account_key,
            "parent_job_id": str(self.parent_job_id) if self.parent_job_id else None,
            "at": at,
        }


def encode_events(events: Sequence[JobEvent], at: float) -> list[bytes]:
    """The Redis messages carrying `events`, at most MAX_EVENTS_PER_MESSAGE each."""
    return [
        json.dumps(
            {"events": [event.as_dict(at) for event in events[i : i + MAX_EVENTS_PER_MESSAGE]]}
        ).encode()
        for i in range(0, len(events), MAX_EVENTS_PER_MESSAGE)
    ]


def decode_events(message: bytes | str) -> list[dict[str, Any]]:
    """The events of one Redis message; an unreadable message yields none."""
    try:
        body = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return []
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        return []
    return [event for event in events if isinstance(event, dict)]


class EventPublisher:
    """Publishes from a daemon thread; `submit` never blocks and never raises."""

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        events_dropped()
        self._queue: queue.Queue[list[bytes]] = queue.Queue(maxsize=_QUEUE_LIMIT)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._last_error_logged = 0.0

    def submit(self, events: Sequence[JobEvent]) -> None:
        if not events:
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(encode_events(events, time.time()))
        except queue.Full:
            events_dropped().inc(len(events))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was handed to Redis (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def _ensure_thread(self) -> None:
        # Started lazily and again after a fork: a forked worker child inherits the object but
        # not the thread.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(maxsize=_QUEUE_LIMIT)
            thread = threading.Thread(target=self._run, name="job-events", daemon=True)
            thread.start()
            self._pid = os.getpid()

    def _run(self) -> None:
        client = redis.Redis.from_url(
            self._redis_url,
            socket_timeout=_REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        )
        work = self._queue
        while True:
            batches = [work.get()]
            time.sleep(_LINGER_SECONDS)
            while True:
                try:
                    batches.append(work.get_nowait())
                except queue.Empty:
                    break
            try:
                pipe = client.pipeline(transaction=False)
                for messages in batches:
                    for message in messages:
                        pipe.publish(JOB_EVENTS_CHANNEL, message)
                pipe.execute()
            except redis.RedisError:
                events_dropped().inc(sum(len(decode_events(m)) for b in batches for m in b))
                self._log_throttled()
            finally:
                for _ in batches:
                    work.task_done()

    def _log_throttled(self) -> None:
        now = time.monotonic()
        if now - self._last_error_logged >= _ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_logged = now
            logger.warning("cannot publish job events to Redis; dropping them", exc_info=True)


_publisher: EventPublisher | None = None


def init_event_publisher(redis_url: str) -> EventPublisher:
    """Called once at process start (api lifespan, worker and beat init)."""
    global _publisher
    _publisher = EventPublisher(redis_url)
    return _publisher


def get_event_publisher() -> EventPublisher | None:
    return _publisher


def publish_after_commit(session: Session, events: Iterable[JobEvent]) -> None:
    """Publish `events` once the session's transaction commits; a process without a publisher
    (a test calling the core directly) publishes nothing."""
    publisher = _publisher
    batch = list(events)
    if publisher is None or not batch:
        return
    call_after_commit(session, lambda: publisher.submit(batch))


def job_event(job: JobRecord, change: JobChange) -> JobEvent:
    return JobEvent(
        change=change,
        job_id=job.job_id,
        job_type=job.job_type,
        status=job.status,
        progress=job.progress,
        account_key=job.account_key,
        parent_job_id=job.parent_job_id,
    )


def publish_jobs(session: Session, jobs: Iterable[JobRecord], change: JobChange) -> None:
    publish_after_commit(session, (job_event(job, change) for job in jobs))


def publish_jobs_now(jobs: Iterable[JobRecord], change: JobChange) -> None:
    """Publish changes that are already committed (autocommit statements)."""
    publisher = _publisher
    batch = [job_event(job, change) for job in jobs]
    if publisher is not None and batch:
        publisher.submit(batch)
