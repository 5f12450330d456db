"""Streams benchmark: N WebSocket clients on one api process while jobs change state.

A driver process publishes job changes at a steady rate through the engine's own publisher
(`gristmill.events`): each job goes pending -> running -> completed. Every client measures, for
every job message it receives, the time from the publisher's commit (`at`) to its arrival. Run
alone with `python -m bench.streams`, or from `make bench` (section `streams`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from gristmill.events import JobChange, JobEvent, init_event_publisher
from gristmill.jobs.types import JobStatus
from gristmill.migrations.runner import create_database, drop_database, upgrade
from tests.support.services import (
    private_database_url,
    private_redis_url,
    server_urls,
    settings_from_env,
)
from tests.support.stack import Stack, free_port

TOKEN = "bench-token"
TICK_SECONDS = 0.1


@dataclass
class StreamsResult:
    clients: int
    jobs_per_second: float
    seconds: float
    changes_published: int
    deliveries: int
    expected: int
    resyncs: int
    latencies_ms: list[float] = field(repr=False)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[int(len(ordered) * 0.99) - 1] if ordered else float("nan")

    def summary(self) -> str:
        return (
            f"streams: {self.clients} WebSocket clients on one api process, jobs at "
            f"{self.changes_published / 3 / self.seconds:.0f}/s (asked {self.jobs_per_second:g}/s;"
            f" {self.changes_published} state changes in {self.seconds:.0f} s): delivered "
            f"{self.deliveries}/{self.expected}, "
            f"latency p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms, resyncs {self.resyncs}"
        )


def _event(job_id: uuid.UUID, change: JobChange, status: JobStatus, progress: int) -> JobEvent:
    return JobEvent(change, job_id, "scrape_account", status.value, progress, "bench", None)


def _drive(env: dict[str, str], rate: float, seconds: float, counter: Any) -> None:
    """In its own process: every tick (0.1 s) a batch of jobs is created, the previous batch
    starts running and the one before completes, each step published as the engine publishes
    one commit's changes (`gristmill.events`): `rate` jobs a second go pending -> running ->
    completed. The rows themselves are not written: a change's `at` is stamped after its commit,
    so the database is not part of the delivery path measured here, and phantom jobs cannot
    reach the workers of a shared benchmark stack."""
    settings = settings_from_env(env)
    publisher = init_event_publisher(settings.redis_url.get_secret_value())
    per_tick = max(1, round(rate * TICK_SECONDS))
    created: list[uuid.UUID] = []
    running: list[uuid.UUID] = []
    changes = 0
    started = time.monotonic()
    tick = 0
    while time.monotonic() - started < seconds or created or running:
        due = started + tick * TICK_SECONDS
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        tick += 1
        if running:
            publisher.submit(
                [_event(j, JobChange.STATUS, JobStatus.COMPLETED, 100) for j in running]
            )
            changes += len(running)
        running, created = created, []
        if running:
            publisher.submit([_event(j, JobChange.STATUS, JobStatus.RUNNING, 0) for j in running])
            changes += len(running)
        if time.monotonic() - started < seconds:
            created = [uuid.uuid4() for _ in range(per_tick)]
            publisher.submit([_event(j, JobChange.CREATED, JobStatus.PENDING, 0) for j in created])
            changes += len(created)
    publisher.flush()
    counter.value = changes


async def _client(
    url: str,
    token: str,
    ready: asyncio.Event,
    out: dict[str, float],
    resyncs: list[int],
    sockets: list[object],
) -> None:
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, max_queue=None
    ) as socket:
        sockets.append(socket)
        # Ends when the socket is closed at the end of the run.
        async for frame in socket:
            arrived = time.time()
            decoded = json.loads(frame)
            for message in decoded if isinstance(decoded, list) else [decoded]:
                kind = message.get("type")
                if kind == "job":
                    out[message["id"]] = (arrived - message["data"]["at"]) * 1000
                elif kind == "snapshot":
                    ready.set()
                elif kind == "resync":
                    resyncs.append(1)


async def _measure(
    api_url: str, env: dict[str, str], clients: int, rate: float, seconds: float
) -> StreamsResult:
    ws_url = api_url.replace("http://", "ws://") + "/api/ws"
    sockets: list[object] = []
    readies = [asyncio.Event() for _ in range(clients)]
    latencies: list[dict[str, float]] = [{} for _ in range(clients)]
    resyncs: list[int] = []
    token = env["API_TOKENS"].split(",")[0]
    tasks = [
        asyncio.create_task(_client(ws_url, token, readies[i], latencies[i], resyncs, sockets))
        for i in range(clients)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=60)
    # Spawned, not forked: the driver must not inherit this process's event loop and sockets.
    spawn = multiprocessing.get_context("spawn")
    counter = spawn.Value("i", 0)
    driver = spawn.Process(target=_drive, args=(env, rate, seconds, counter))
    driver.start()
    await asyncio.to_thread(driver.join)
    await asyncio.sleep(2.0)  # the tail of deliveries
    await asyncio.gather(*(socket.close() for socket in sockets))  # type: ignore[attr-defined]
    await asyncio.gather(*tasks, return_exceptions=True)
    flat = [value for per_client in latencies for value in per_client.values()]
    # Every change any client saw is one every client should have seen.
    seen = set().union(*(per_client.keys() for per_client in latencies))
    return StreamsResult(
        clients, rate, seconds, counter.value, len(flat), len(seen) * clients, len(resyncs), flat
    )


def bench_streams(
    api_url: str, env: dict[str, str], *, clients: int = 100, rate: float = 50, seconds: float = 10
) -> StreamsResult:
    """Run against an api already serving at `api_url` with `env`; prints and returns figures."""
    result = asyncio.run(_measure(api_url, env, clients, rate, seconds))
    print(result.summary(), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50, help="jobs per second")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with server_urls() as servers, private_redis_url(servers.redis_server_url) as redis_url:
        database_url = private_database_url(servers.database_server_url, "bench_streams")
        create_database(database_url)
        upgrade(database_url)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "API_TOKENS": TOKEN,
            "LOG_LEVEL": "WARNING",
            "PORT": str(free_port()),
        }
        with tempfile.TemporaryDirectory() as logs:
            stack = Stack(env=env, log_dir=Path(logs))
            try:
                stack.start_all(["api"])
                bench_streams(
                    stack.api_url, env, clients=args.clients, rate=args.rate, seconds=args.seconds
                )
            finally:
                stack.stop_all()
                drop_database(database_url)


if __name__ == "__main__":
    main()
