"""Scraping a batch of fan-out children concurrently inside one worker process.

One message carries many child job ids. Their profiles are fetched with bounded concurrency on
the process's event loop, and their outcomes are committed as they come, grouped: at most every
FLUSH_INTERVAL_SECONDS one transaction ends the children that finished, stores their snapshots
and moves their parents' progress. A child that is cancelled (or whose parent is) has its
in-flight request cancelled within about a second, and nothing is written for it. A child that
hits a transient error goes back to pending with backoff; the relay sends it again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from gristmill.clock import utc_now
from gristmill.db import Database, get_database
from gristmill.errors import NotFoundError
from gristmill.jobs.lifecycle import Ending, claim_jobs, finish_jobs
from gristmill.jobs.runtime import (
    ClaimedJob,
    JobTimedOutError,
    apply_decisions,
    decide,
    process_loop,
    with_database_retry,
)
from gristmill.jobs.types import JobStatus
from gristmill.jobs.watch import job_watch
from gristmill.metrics.service import SnapshotWrite, save_snapshots
from gristmill.scrape_jobs.accounts import LoadedAccount, load_accounts, snapshot_result
from gristmill.scrape_jobs.clients import http_clients
from gristmill.scrapers import PlatformScraper, ProfileSnapshot, get_scraper
from gristmill.settings import Settings, get_settings

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class _Outcome:
    child: ClaimedJob
    profile: ProfileSnapshot | None
    error: BaseException | None
    at: datetime


@dataclass
class BatchSummary:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    stopped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "claimed": self.claimed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retrying": self.retrying,
            "stopped": self.stopped,
        }


def scrape_batch(job_ids: Sequence[str]) -> dict[str, int]:
    """Claim the pending children among `job_ids`, scrape them, and end each one."""
    settings, database = get_settings(), get_database()
    ids = [uuid.UUID(job_id) for job_id in job_ids]

    def claim() -> tuple[list[ClaimedJob], dict[str, LoadedAccount]]:
        with database.transaction() as session:
            children = [ClaimedJob.of(job) for job in claim_jobs(session, ids)]
            keys = [child.account_key or "" for child in children]
            return children, load_accounts(session, keys)

    children, accounts = with_database_retry(claim)
    if not children:
        return {"claimed": 0}
    run = _BatchRun(settings, database, children, accounts)
    with job_watch.tracking([child.owner for child in children], run.stop):
        process_loop().run_until_complete(run.run())
    logger.info("batch scraped: %s", run.summary.as_dict())
    return run.summary.as_dict()


class _BatchRun:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        children: list[ClaimedJob],
        accounts: dict[str, LoadedAccount],
    ) -> None:
        self.settings = settings
        self.database = database
        self.children = children
        self.accounts = accounts
        self.summary = BatchSummary(claimed=len(children))
        self._ready: list[_Outcome] = []
        self._tasks: dict[uuid.UUID, asyncio.Task[ProfileSnapshot]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self, job_id: uuid.UUID) -> None:
        """From the watch thread: the child was cancelled or taken over; drop its request."""
        loop, task = self._loop, self._tasks.get(job_id)
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        semaphore = asyncio.Semaphore(self.settings.scraper_concurrency)
        clients = http_clients(self.settings)
        for index, child in enumerate(self.children):
            account = self.accounts.get(child.account_key or "")
            if account is None:
                missing = NotFoundError(f"account {child.account_key!r} no longer exists")
                self._ready.append(_Outcome(child, None, missing, utc_now()))
                continue
            scraper = get_scraper(
                account.ref.platform,
                clients[index % len(clients)],
                allow_private_networks=self.settings.scraper_allow_private_networks,
            )
            task = asyncio.create_task(self._fetch(semaphore, scraper, account))
            task.add_done_callback(partial(self._done, child))
            self._tasks[child.job_id] = task
        pending = set(self._tasks.values())
        while pending:
            _, pending = await asyncio.wait(pending, timeout=FLUSH_INTERVAL_SECONDS)
            await self._flush()
        await self._flush()

    async def _fetch(
        self, semaphore: asyncio.Semaphore, scraper: PlatformScraper, account: LoadedAccount
    ) -> ProfileSnapshot:
        async with semaphore, asyncio.timeout(self.settings.scrape_soft_time_limit_seconds):
            return await scraper.fetch_profile(account.ref)

    def _done(self, child: ClaimedJob, task: asyncio.Task[ProfileSnapshot]) -> None:
        if task.cancelled():
            self.summary.stopped += 1  # cancelled or taken over: nothing is written for it
            return
        error = task.exception()
        if error is None:
            self._ready.append(_Outcome(child, task.result(), None, utc_now()))
        else:
            if isinstance(error, TimeoutError):
                error = JobTimedOutError()
            self._ready.append(_Outcome(child, None, error, utc_now()))

    async def _flush(self) -> None:
        ready, self._ready = self._ready, []
        if ready:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._write, ready)

    def _write(self, outcomes: list[_Outcome]) -> None:
        """End these children in one transaction (retried while PostgreSQL is unreachable)."""
        with_database_retry(partial(self._write_once, outcomes))
        job_watch.untrack([outcome.child.job_id for outcome in outcomes])

    def _write_once(self, outcomes: list[_Outcome]) -> None:
        soft_limit = self.settings.scrape_soft_time_limit_seconds
        succeeded = [o for o in outcomes if o.profile is not None]
        failed = [o for o in outcomes if o.error is not None]
        decisions = [
            decide(
                self.settings, o.child, o.error, partial_result=None, soft_limit_seconds=soft_limit
            )
            for o in failed
            if o.error is not None
        ]
        with self.database.transaction() as session:
            ended = finish_jobs(
                session,
                [
                    Ending(
                        o.child.owner,
                        JobStatus.COMPLETED,
                        snapshot_result(o.child.account_key or "", o.at, o.profile),
                    )
                    for o in succeeded
                    if o.profile is not None
                ],
            )
            self._save_snapshots(session, succeeded, {job.job_id for job in ended})
            changed = apply_decisions(session, decisions)
        self.summary.succeeded += len(ended)
        for outcome, decision in zip(failed, decisions, strict=True):
            if outcome.child.job_id not in changed:
                continue
            if decision.postponement is not None:
                self.summary.retrying += 1
            else:
                self.summary.failed += 1
            logger.warning(
                "account %s (job %s) %s: %s",
                outcome.child.account_key,
                outcome.child.job_id,
                decision.outcome.value,
                outcome.error,
            )

    def _save_snapshots(
        self, session: Session, succeeded: list[_Outcome], ended: set[uuid.UUID]
    ) -> None:
        save_snapshots(
            session,
            [
                SnapshotWrite(self.accounts[o.child.account_key or ""].id, o.at, o.profile)
                for o in succeeded
                if o.profile is not None and o.child.job_id in ended
            ],
        )
