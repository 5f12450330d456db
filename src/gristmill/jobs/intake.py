"""Group commit for the api's start requests.

Concurrent start requests are queued to one thread per api process, which takes whatever has
queued up and starts it all in one transaction (`start_jobs`: a few statements for the whole
batch), commits once, and answers each request. The commit hands the new jobs to the
dispatcher, which sends them in one Redis pipeline; the answers go once that send is done (or
after SEND_WAIT_SECONDS). Under load a request waits at most for the batch in progress; an
idle api answers one request with one statement.

A batch that fails as a whole (a statement the database refuses) is retried one request per
transaction, so one bad request cannot fail the others queued with it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from gristmill.db import Database
from gristmill.errors import DomainError
from gristmill.jobs.outbox import wait_for_sends
from gristmill.jobs.starts import StartedJob, StartRequest, start_jobs

logger = logging.getLogger(__name__)

MAX_BATCH = 256
# How long a batch's answers wait for its messages to reach the broker (normally about a
# millisecond); past it they are answered anyway and the send goes on behind them.
SEND_WAIT_SECONDS = 0.05

_Item = tuple[StartRequest, "Future[StartedJob]"]


class JobIntake:
    def __init__(self, database: Callable[[], Database], *, max_batch: int = MAX_BATCH) -> None:
        self._database = database
        self._max_batch = max_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="job-intake", daemon=True)
        self._thread.start()

    async def start(self, request: StartRequest) -> StartedJob:
        """Start `request` in the next batch; raises the error that refused it."""
        return await asyncio.wrap_future(self.submit(request))

    def submit(self, request: StartRequest) -> Future[StartedJob]:
        """Queue a start; the future ends with the started job or the error refusing it."""
        future: Future[StartedJob] = Future()
        self._queue.put((request, future))
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches queued so far, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._start(batch)

    def _start(self, batch: list[_Item]) -> None:
        requests = [request for request, _ in batch]
        database = self._database()
        # A start's answer to an Idempotency-Key must commit with its job: a transaction then.
        # Otherwise each statement (the account check, the one insert of the whole batch) is
        # atomic by itself, and autocommit saves two round trips.
        keyed = any(request.idempotency_key is not None for request in requests)
        try:
            with database.transaction() if keyed else database.autocommit_session() as session:
                outcomes = start_jobs(session, requests)
        except Exception as exc:
            if len(batch) == 1:
                # Database errors reach the api's error handlers as they are (503, 409, 422).
                batch[0][1].set_exception(exc)
                return
            logger.warning("a batch of %d starts failed; starting them one by one", len(batch))
            for item in batch:
                self._start([item])
            return
        wait_for_sends(SEND_WAIT_SECONDS)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
