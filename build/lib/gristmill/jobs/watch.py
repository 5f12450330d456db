"""Watching the jobs a worker process runs: heartbeats, and a stop when they are taken away.

One daemon thread per process. Every second, while the process runs jobs, it asks which of
them its attempts still own (one query for all of them; every JOB_HEARTBEAT_INTERVAL_SECONDS
the same query also refreshes their heartbeats). A job that was cancelled, or handed to another
worker after this one was presumed dead, gets its stop callback: its in-flight requests are
cancelled within about a second, and nothing more is written for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from gristmill.db import get_database
from gristmill.jobs.lifecycle import still_owned
from gristmill.jobs.types import Attempt
from gristmill.settings import get_settings

logger = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0

StopCallback = Callable[[uuid.UUID], None]


class JobWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracked: dict[uuid.UUID, tuple[Attempt, StopCallback]] = {}
        self._pid: int | None = None
        self._wake = threading.Event()

    @contextmanager
    def tracking(self, owners: Sequence[Attempt], on_stop: StopCallback) -> Iterator[None]:
        """Heartbeat these attempts' jobs while the block runs; call `on_stop(job_id)` (from
        the watch thread) for each one that stops being theirs."""
        with self._lock:
            self._ensure_thread()
            for owner in owners:
                self._tracked[owner.job_id] = (owner, on_stop)
        try:
            yield
        finally:
            with self._lock:
                for owner in owners:
                    self._tracked.pop(owner.job_id, None)

    def untrack(self, job_ids: Sequence[uuid.UUID]) -> None:
        """Stop watching jobs that ended before their block does (a batch's finished children)."""
        with self._lock:
            for job_id in job_ids:
                self._tracked.pop(job_id, None)

    def _ensure_thread(self) -> None:
        # Lazily, and again in a forked pool child (which inherits the object, not the thread).
        if self._pid == os.getpid():
            return
        self._tracked = {}
        threading.Thread(target=self._run, name="job-watch", daemon=True).start()
        self._pid = os.getpid()

    def _run(self) -> None:
        settings = get_settings()
        last_beat = 0.0
        while True:
            time.sleep(CHECK_INTERVAL_SECONDS)
            with self._lock:
                tracked = dict(self._tracked)
            if not tracked:
                continue
            now = time.monotonic()
            beat = now - last_beat >= settings.job_heartbeat_interval_seconds
            try:
                with get_database().transaction() as session:
                    owned = still_owned(session, [a for a, _ in tracked.values()], beat=beat)
            except Exception:  # a missed check is retried next second
                logger.warning("cannot check the running jobs' state", exc_info=True)
                continue
            if beat:
                last_beat = now
            for job_id, (_, on_stop) in tracked.items():
                if job_id in owned:
                    continue
                with self._lock:
                    still_tracked = self._tracked.pop(job_id, None) is not None
                if still_tracked:
                    on_stop(job_id)


job_watch = JobWatch()
