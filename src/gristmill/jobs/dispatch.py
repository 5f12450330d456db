"""Sending jobs to Celery: the one module of the core that publishes messages.

Each process (api, worker, scheduler) has one `Dispatcher`, a daemon thread. Its fast path
sends the jobs the process just committed, grouped into one Redis pipeline per batch, and
stamps them sent. In api and scheduler processes it is also the outbox relay: every
`OUTBOX_RELAY_INTERVAL_SECONDS` it checks the broker's epoch, sends due unsent jobs (retries
whose backoff is over, jobs whose sender died, jobs the broker lost) and, every
`ORPHAN_CHECK_INTERVAL_SECONDS`, puts back jobs whose worker died. Requests never fail for the
broker: while Redis is down jobs are accepted and committed, and the relay sends them once it
is back (an answer waits for its send, `wait_sent`, a bounded moment).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import Counter

from gristmill.celery_app import celery_app
from gristmill.db import Database
from gristmill.jobs import outbox
from gristmill.jobs.orphans import requeue_orphaned_jobs
from gristmill.jobs.outbox import OutboxJob
from gristmill.jobs.parents import settle_stranded_parents
from gristmill.jobs.types import (
    CHILD_PRIORITY,
    CHILD_QUEUE,
    JOB_TYPES,
    SCRAPE_ACCOUNT_BATCH_TASK,
    JobType,
)
from gristmill.settings import Settings

logger = logging.getLogger(__name__)

BROKER_EPOCH_KEY = "gristmill:broker-epoch"
RELAY_BATCH = 1000
BROKER_DOWN_BACKOFF = 5
EPOCH_CACHE_SECONDS = 1.0
_ERROR_LOG_INTERVAL_SECONDS = 60.0

JOBS_SENT = Counter(
    "gristmill_outbox_jobs_sent",
    "Jobs handed to the broker, by path: fast (right after commit) or relay.",
    ["path"],
)


@functools.cache
def broker_resets() -> Counter:
    # Made with the first dispatcher, not at import (see gristmill.events.events_dropped).
    return Counter(
        "gristmill_broker_data_loss",
        "Times the relay found the broker's epoch gone and marked every pending job unsent.",
    )


@dataclass(frozen=True)
class TaskMessage:
    task_name: str
    kwargs: dict[str, Any]
    task_id: str
    queue: str
    priority: int


def task_messages(jobs: Sequence[OutboxJob], batch_size: int) -> list[TaskMessage]:
    """The messages that run `jobs`: fan-out scrape children go many to a message (one
    message scrapes its accounts concurrently), every other job gets its own message whose
    id is the job id."""
    children: list[OutboxJob] = []
    singles: list[OutboxJob] = []
    for job in jobs:
        batched = job.parent_job_id is not None and job.job_type == JobType.SCRAPE_ACCOUNT.value
        (children if batched else singles).append(job)
    messages = [
        TaskMessage(
            JOB_TYPES[JobType(job.job_type)].task_name,
            job.params,
            str(job.job_id),
            job.queue,
            job.priority,
        )
        for job in singles
    ]
    for start in range(0, len(children), batch_size):
        chunk = children[start : start + batch_size]
        messages.append(
            TaskMessage(
                SCRAPE_ACCOUNT_BATCH_TASK,
                {"job_ids": [str(job.job_id) for job in chunk]},
                str(uuid.uuid4()),
                CHILD_QUEUE.value,
                CHILD_PRIORITY,
            )
        )
    return messages


def publish(messages: Sequence[TaskMessage]) -> None:
    """Send `messages` through one producer and one Redis pipeline.

    Celery's own message format and publishing (`amqp.create_task_message`,
    `amqp.send_task_message`, so the publish signals and metrics fire), without `send_task`'s
    per-message routing and result-backend set-up: Gristmill routes each job itself and never
    reads results. Straight to the queue's Redis list (the default exchange), so a broker that
    lost its bindings with its data still receives messages.
    """
    amqp = celery_app.amqp
    with celery_app.producer_or_acquire() as producer, producer.batch():
        for message in messages:
            task_message = amqp.create_task_message(
                message.task_id,
                message.task_name,
                (),
                message.kwargs,
                # What Flower shows; repr() is cheap where Celery's saferepr is not.
                argsrepr="()",
                kwargsrepr=repr(message.kwargs)[:1024],
                ignore_result=True,
            )
            amqp.send_task_message(
                producer,
                message.task_name,
                task_message,
                exchange="",
                routing_key=message.queue,
                queue=message.queue,
                priority=message.priority,
            )


class BrokerEpoch:
    """The broker's identity: a random value under a key that vanishes with Redis's data."""

    def __init__(self, broker_url: str) -> None:
        self._client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
        self._seen: str | None = None
        self._seen_at = 0.0

    def current(self) -> str | None:
        value = self._client.get(BROKER_EPOCH_KEY)
        if value is None:
            return None
        self._seen = value.decode() if isinstance(value, bytes) else str(value)
        self._seen_at = time.monotonic()
        return self._seen

    def recent(self) -> str | None:
        """An epoch read at most EPOCH_CACHE_SECONDS ago, for marking fast sends.

        A slightly old value is safe: a job sent after the broker lost its data and marked
        under the old epoch is reset when the relay adopts the new one (a duplicate send);
        marked under a value the database no longer holds, it stays unsent (sent again).
        What must never happen, a mark that outlives the reset of the epoch it names, the
        mark's own check of the database rules out."""
        if self._seen is None or time.monotonic() - self._seen_at > EPOCH_CACHE_SECONDS:
            return self.current()
        return self._seen

    def ensure(self) -> str:
        """The current epoch, creating a new one if the key is gone."""
        self._client.set(BROKER_EPOCH_KEY, uuid.uuid4().hex, nx=True)
        return self.current() or self.ensure()


class Dispatcher:
    """One per process: the fast path always, the relay and orphan check when `relay`."""

    def __init__(
        self,
        settings: Settings,
        database: Callable[[], Database],
        *,
        relay: bool,
        publisher: Callable[[Sequence[TaskMessage]], None] = publish,
    ) -> None:
        self._settings = settings
        self._database = database
        broker_resets()
        self._relay = relay
        self._publish = publisher
        self._epoch = BrokerEpoch(settings.broker_url)
        self._queue: queue.Queue[Sequence[OutboxJob]] = queue.Queue()
        self._lock = threading.Lock()
        # Submissions queued and submissions handled (sent, or left to the relay): wait_sent.
        self._progress = threading.Condition()
        self._submitted = 0
        self._handled = 0
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # While the broker is known to be down, the fast path stops queueing (the relay, or the
        # next fast send after this instant, takes over).
        self._broker_down_until = 0.0
        self._next_relay = 0.0
        self._next_orphan_check = 0.0
        self._last_error_logged = 0.0

    # --- the fast path ---------------------------------------------------------------------

    def submit(self, jobs: Sequence[OutboxJob]) -> None:
        """Send these committed jobs soon; never blocks, never raises."""
        self._ensure_thread()
        if time.monotonic() < self._broker_down_until:
            # They are committed and unsent: the relay sends them once the broker is back.
            return
        with self._progress:
            self._submitted += 1
        self._queue.put(jobs)

    def _handled_some(self, count: int) -> None:
        with self._progress:
            self._handled += count
            self._progress.notify_all()

    def wait_sent(self, timeout: float) -> bool:
        """Wait until everything submitted so far is handled; False if `timeout` ran out."""
        with self._progress:
            target = self._submitted
            return self._progress.wait_for(lambda: self._handled >= target, timeout)

    def _send_fast(self, batches: list[Sequence[OutboxJob]]) -> None:
        jobs = [job for batch in batches for job in batch]
        try:
            try:
                epoch = self._epoch.recent()
                self._publish(task_messages(jobs, self._settings.fanout_batch_size))
            finally:
                # Whether sent or left to the relay, waiting answers can go now: marking the
                # jobs sent is bookkeeping.
                self._handled_some(len(batches))
        except Exception:
            self._broker_failed("cannot send %d jobs; the outbox relay will send them", len(jobs))
            return
        JOBS_SENT.labels(path="fast").inc(len(jobs))
        if epoch is None:
            return  # the relay creates the epoch and, finding it new, sends these again
        try:
            with self._database().autocommit() as connection:
                outbox.mark_enqueued(connection, [job.job_id for job in jobs], epoch)
        except Exception:
            # Unmarked jobs are sent once more by the relay; the claim makes that harmless.
            logger.warning("cannot mark %d sent jobs", len(jobs), exc_info=True)

    # --- the relay -------------------------------------------------------------------------

    def relay_once(self) -> int:
        """Adopt the broker's epoch and send every due unsent job; returns how many."""
        database = self._database()
        epoch = self._epoch.ensure()
        with database.transaction() as session:
            reset = outbox.adopt_broker_epoch(session, epoch)
        if reset:
            broker_resets().inc()
            logger.warning(
                "the broker lost its data (epoch %s is new): %d pending jobs will be sent again",
                epoch,
                reset,
            )
        sent = 0
        while True:
            with database.transaction() as session:
                jobs = outbox.claim_unsent(session, limit=RELAY_BATCH)
                if jobs:
                    self._publish(task_messages(jobs, self._settings.fanout_batch_size))
                    outbox.mark_enqueued(session.connection(), [job.job_id for job in jobs], epoch)
            sent += len(jobs)
            if len(jobs) < RELAY_BATCH:
                break
        if sent:
            JOBS_SENT.labels(path="relay").inc(sent)
            logger.info("outbox relay sent %d jobs", sent)
        return sent

    def check_orphans(self) -> list[uuid.UUID]:
        with self._database().transaction() as session:
            requeued = requeue_orphaned_jobs(session, self._settings)
            settled = settle_stranded_parents(session)
        if requeued:
            logger.warning("%d jobs lost their worker and were put back to pending", len(requeued))
        if settled:
            logger.warning("%d fan-out parents were recounted and settled", len(settled))
        return requeued

    def _maybe_relay(self) -> None:
        now = time.monotonic()
        if now >= self._next_orphan_check:
            self._next_orphan_check = now + self._settings.orphan_check_interval_seconds
            try:
                if self.check_orphans():
                    self._next_relay = 0.0
            except Exception:
                self._log_throttled("orphan check failed; retrying next interval")
        if now < self._next_relay:
            return
        self._next_relay = now + self._settings.outbox_relay_interval_seconds
        try:
            self.relay_once()
        except Exception:
            self._broker_failed("outbox relay failed; retrying in %ss", self._next_relay - now)
            return
        self._broker_down_until = 0.0

    # --- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        self._ensure_thread()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current round (sends in flight finish)."""
        self._stopping.set()
        self._queue.put(())
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        # Started lazily, and again in a forked worker child, which inherits the object but
        # not its thread.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue()
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, name="job-dispatcher", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def _run(self) -> None:
        interval = self._settings.outbox_relay_interval_seconds
        while not self._stopping.is_set():
            try:
                batches = [self._queue.get(timeout=interval if self._relay else None)]
            except queue.Empty:
                batches = []
            while True:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batches = [batch for batch in batches if batch]
            if batches:
                self._send_fast(batches)
            if self._relay:
                self._maybe_relay()

    def _broker_failed(self, message: str, *args: object) -> None:
        self._broker_down_until = (
            time.monotonic() + BROKER_DOWN_BACKOFF * self._settings.outbox_relay_interval_seconds
        )
        self._log_throttled(message, *args)

    def _log_throttled(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_error_logged >= _ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_logged = now
            logger.warning(message, *args, exc_info=True)


_dispatcher: Dispatcher | None = None


def start_dispatcher(
    settings: Settings, database: Callable[[], Database], *, relay: bool
) -> Dispatcher:
    """Give this process its dispatcher (api lifespan, worker and beat start-up)."""
    global _dispatcher
    if _dispatcher is not None:
        _dispatcher.stop()
    _dispatcher = Dispatcher(settings, database, relay=relay)
    if relay:
        # Adopt the broker's epoch before the first fast send, so that jobs sent at start-up
        # are marked sent rather than sent a second time by the relay.
        try:
            _dispatcher.relay_once()
        except Exception:
            logger.warning("the outbox relay cannot run yet; it retries every cycle", exc_info=True)
        _dispatcher.start()
    outbox.use_submitter(_dispatcher)
    return _dispatcher


def stop_dispatcher() -> None:
    global _dispatcher
    if _dispatcher is not None:
        _dispatcher.stop()
    _dispatcher = None
    outbox.use_submitter(None)
