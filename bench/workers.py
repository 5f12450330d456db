"""Worker throughput and start latency: the Procfile's `high` pool against plain Celery.

The plain peer is a no-op task on a prefork pool with the same settings (concurrency 2,
acks_late, prefetch 1, JSON, log level). Gristmill's jobs are real single-account scrapes
against the fake platform answering at once: claim, fetch, store the snapshot, end the job.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
import redis
from celery import Celery
from sqlalchemy import func, select

from bench.cpu import TreeCPU, tree_cpu
from bench.environment import BenchEnv, Process, wait_for_celery_worker
from bench.plain_api import QUEUE, TASK_NAME
from bench.plain_celery import LATENCIES_KEY
from bench.start_endpoint import start_plain_api
from gristmill.celery_app import redis_list_names
from gristmill.jobs.models import Job
from tests.support.stack import wait_until

CONCURRENCY = os.environ.get("BENCH_CONCURRENCY", "2")


@dataclass(frozen=True)
class DrainResult:
    jobs: int
    seconds: float
    # CPU of the worker's main process and of its pool processes over the drain.
    cpu: TreeCPU

    @property
    def main_ms_per_job(self) -> float:
        return self.cpu.main * 1000 / self.jobs

    @property
    def pool_ms_per_job(self) -> float:
        return self.cpu.children * 1000 / self.jobs

    @property
    def per_second(self) -> float:
        return self.jobs / self.seconds


def _plain_worker(env: BenchEnv) -> Process:
    return Process(
        [
            "celery",
            "-A",
            "bench.plain_celery",
            "worker",
            "--queues",
            QUEUE,
            "--hostname",
            "plain@%h",
            "--concurrency",
            CONCURRENCY,
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
        ],
        {**env.env, "CELERY_BROKER_URL": env.peer_broker_url},
        env.log_dir / "plain_worker.log",
    )


def _plain_app(env: BenchEnv) -> Celery:
    return Celery("plain-sender", broker=env.peer_broker_url)


async def _post_all(env: BenchEnv, keys: list[str], concurrency: int = 32) -> None:
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=env.stack.api_url, headers=env.headers, timeout=60
    ) as client:

        async def one(key: str) -> None:
            async with semaphore:
                response = await client.post(f"/api/jobs/scrape-account/{key}")
                response.raise_for_status()

        await asyncio.gather(*(one(key) for key in keys))


def _queued(url: str, queue: str) -> int:
    client = redis.Redis.from_url(url)
    return sum(int(client.llen(name)) for name in redis_list_names(queue))


def _watch_drain(
    url: str, queue: str, jobs: int, worker_pid: int, timeout: float = 600
) -> DrainResult:
    """Seconds from the first message taken off `queue` until every message is consumed and
    acknowledged (the same measure for both peers: acks_late acknowledges after the task),
    and the worker's CPU over that time."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    began: float | None = None
    cpu_at_start = TreeCPU(0.0, 0.0)
    while time.monotonic() < deadline:
        # One pipelined round trip per poll, 50 times a second: the fake platform shares this
        # process, and a busy poller would slow Gristmill's requests, not the no-op peer.
        pipe = client.pipeline(transaction=False)
        for name in redis_list_names(queue):
            pipe.llen(name)
        pipe.hlen("unacked")
        *lengths, unacked = pipe.execute()
        waiting = sum(int(length) for length in lengths)
        now = time.monotonic()
        if began is None and waiting < jobs:
            # From the first message taken: the worker's start-up is not the jobs' cost.
            began, cpu_at_start = now, tree_cpu(worker_pid)
        if began is not None and waiting == 0 and unacked == 0:
            return DrainResult(jobs, now - began, tree_cpu(worker_pid) - cpu_at_start)
        time.sleep(0.02)
    raise AssertionError(f"{queue} did not drain within {timeout}s")


def median_round(rounds: list[DrainResult]) -> DrainResult:
    """The round with the median rate (its CPU figures come with it)."""
    return sorted(rounds, key=lambda r: r.per_second)[len(rounds) // 2]


def bench_gristmill_drain(env: BenchEnv, jobs: int) -> DrainResult:
    env.reset()
    keys = [f"drain{index}" for index in range(jobs)]
    env.add_accounts(keys)
    env.stack.start("api")
    env.stack.wait_for_api()
    asyncio.run(_post_all(env, keys))
    url = env.settings.broker_url
    wait_until(lambda: _queued(url, "high") >= jobs, timeout=60, what=f"{jobs} queued messages")
    # Write out what earlier sections left in PostgreSQL's buffers: not this drain's cost.
    env.vacuum()
    env.stack.start("worker_high", {"WORKER_CONCURRENCY": CONCURRENCY})
    try:
        result = _watch_drain(url, "high", jobs, env.stack.processes["worker_high"].pid)
    finally:
        env.stack.kill("worker_high")
        env.stack.kill("api")
    with env.database.transaction() as session:
        done = session.scalar(
            select(func.count()).select_from(Job).where(Job.status == "completed")
        )
    if done != jobs:
        raise AssertionError(f"only {done} of {jobs} jobs completed")
    return result


def bench_plain_drain(env: BenchEnv, jobs: int) -> DrainResult:
    env.reset()
    env.vacuum()
    app = _plain_app(env)
    with app.producer_or_acquire() as producer:
        for index in range(jobs):
            app.send_task(
                TASK_NAME, kwargs={"account_key": f"drain{index}"}, queue=QUEUE, producer=producer
            )
    worker = _plain_worker(env)
    worker.start()
    try:
        assert worker.process is not None
        return _watch_drain(env.peer_broker_url, QUEUE, jobs, worker.process.pid)
    finally:
        worker.stop()


def bench_gristmill_start_latency(env: BenchEnv, samples: int) -> list[float]:
    """Milliseconds from sending the POST to the job being `running` in a worker."""
    env.reset()
    keys = [f"latency{index}" for index in range(samples)]
    env.add_accounts(keys)
    env.stack.start("api")
    env.stack.start("worker_high", {"WORKER_CONCURRENCY": CONCURRENCY})
    env.stack.wait_for_api()
    wait_until(lambda: "ready" in env.stack.log("worker_high"), timeout=60, what="worker ready")
    sent_at: dict[str, float] = {}
    with env.client() as client:
        for key in keys[:5]:  # warm the connections of every process
            client.post(f"/api/jobs/scrape-account/{key}").raise_for_status()
        time.sleep(1)
        for key in keys[5:]:
            sent = time.time()
            job_id = client.post(f"/api/jobs/scrape-account/{key}").json()["job_id"]
            sent_at[job_id] = sent
            time.sleep(0.05)  # idle workers at every start

    def all_started() -> bool:
        with env.database.transaction() as session:
            count = session.scalar(
                select(func.count()).select_from(Job).where(Job.started_at.is_not(None))
            )
        return count == samples

    wait_until(all_started, timeout=60, what="every latency job to start")
    with env.database.transaction() as session:
        started = dict(session.execute(select(Job.job_id, Job.started_at)).all())
    env.stack.kill("worker_high")
    env.stack.kill("api")
    return [_ms_since(sent, started[uuid.UUID(job_id)]) for job_id, sent in sent_at.items()]


def bench_plain_start_latency(env: BenchEnv, samples: int) -> list[float]:
    """Milliseconds from `send_task` to the task body running, on an idle plain worker."""
    env.reset()
    app = _plain_app(env)

    def send(sent_at: float | None) -> None:
        kwargs = {} if sent_at is None else {"sent_at": sent_at}
        app.send_task(TASK_NAME, kwargs=kwargs, queue=QUEUE)

    return _plain_latencies(env, samples, send)


def bench_plain_endpoint_latency(env: BenchEnv, samples: int) -> list[float]:
    """Milliseconds from sending a POST to the plain FastAPI peer to its no-op task running:
    the like-for-like peer of Gristmill's figure (an HTTP request, a committed INSERT, a send
    and Celery's delivery), where `bench_plain_start_latency` is Celery's delivery alone."""
    env.reset()
    api, port = start_plain_api(env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

            def post(sent_at: float | None) -> None:
                params = {} if sent_at is None else {"sent_at": sent_at}
                client.post(f"/jobs/{uuid.uuid4().hex}", params=params).raise_for_status()

            return _plain_latencies(env, samples, post)
    finally:
        api.stop()


def _plain_latencies(
    env: BenchEnv, samples: int, start: Callable[[float | None], None]
) -> list[float]:
    """Start the plain worker, `start` five warm-up tasks (sent_at None) then the measured
    ones, one every 50 ms, and return how long after its `sent_at` each one began (ms)."""
    worker = _plain_worker(env)
    worker.start()
    broker = redis.Redis.from_url(env.peer_broker_url)
    try:
        wait_for_celery_worker(worker)
        for _ in range(5):  # warm the connections of every process
            start(None)
        time.sleep(1)
        broker.delete(LATENCIES_KEY)
        for _ in range(samples - 5):
            start(time.time())
            time.sleep(0.05)  # idle workers at every start
        wait_until(
            lambda: broker.llen(LATENCIES_KEY) == samples - 5, timeout=60, what="plain starts"
        )
        return [float(value) * 1000 for value in broker.lrange(LATENCIES_KEY, 0, -1)]
    finally:
        worker.stop()


def _ms_since(sent: float, started: datetime | None) -> float:
    if started is None:
        raise AssertionError("a job counted as started has no started_at")
    return (started.timestamp() - sent) * 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return float(statistics.median(values))
