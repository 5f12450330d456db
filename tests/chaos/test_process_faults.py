"""Worker processes die under load: a SIGKILL storm, and a SIGTERM rolling restart."""

from __future__ import annotations

import os
import random
import signal
import time

import httpx
import pytest

from gristmill.jobs.types import JOB_TYPES
from gristmill.settings import Settings
from tests.chaos.ledger import count, rows
from tests.chaos.report import settle
from tests.chaos.scale import Scale
from tests.chaos.workload import Workload, declare, start_jobs
from tests.fakeplatform import FakePlatform
from tests.support.faulty import WORKER_POOLS, FaultyStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SLOW_SECONDS = 1.5


def _kill_something(chaos: FaultyStack, rng: random.Random) -> str:
    """SIGKILL a pool's main process with its children (a pod killed), or one pool child (the
    OOM killer's choice). Returns what was killed."""
    name = rng.choice(WORKER_POOLS)
    children = chaos.stack.children(name) if name in chaos.stack.processes else []
    if children and rng.random() < 0.5:
        child = rng.choice(children)
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            return "nothing"
        return "child"
    if name in chaos.stack.processes:
        chaos.stack.kill(name, signal.SIGKILL)
    # Restarted as Kubernetes would, after a moment.
    chaos.stack.start(name)
    return "pod"


def test_sigkill_storm(chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale) -> None:
    workload = declare(chaos, fake_platform, scale, "storm")
    # Every request takes a while, so that kills land on running jobs.
    fake_platform.set_latency(scale.storm_latency)
    with chaos.client() as client:
        start_jobs(client, workload)
    rng = random.Random(8)
    kills = {"pod": 0, "child": 0}
    storm_ends = time.monotonic() + scale.storm_seconds
    while time.monotonic() < storm_ends:
        chaos.revive(WORKER_POOLS)
        killed = _kill_something(chaos, rng)
        if killed in kills:
            kills[killed] += 1
        time.sleep(rng.uniform(0.3, 1.5))
    faults = f"{kills['pod']} pod + {kills['child']} child SIGKILLs in {scale.storm_seconds:.0f}s"
    settle(chaos, "SIGKILL storm", faults, scale.drain_timeout, workload)


def _grace_seconds(settings: Settings, queue: str) -> float:
    """The chart's terminationGracePeriodSeconds: longest hard limit of the pool's tasks + 30."""
    limits = {spec.limits for spec in JOB_TYPES.values() if spec.queue == queue}
    return max(getattr(settings, f"{kind}_hard_time_limit_seconds") for kind in limits) + 30


def _extra_job(client: httpx.Client, queue: str, workload: Workload) -> str:
    """A job for `queue` on a slow account (metrics are upserts: the figures stay exact)."""
    if queue == "high":
        path, body = f"/api/jobs/scrape-account/{workload.scrape_keys[0]}", None
    elif queue == "default":
        path, body = "/api/jobs/scrape-platform/mastodon", None
    else:
        path = f"/api/jobs/backfill-account/{workload.backfill_keys[0]}"
        body = {"days": workload.days}
    response = client.post(f"{path}?force=true", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def test_sigterm_rolling_restart(
    chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale
) -> None:
    workload = declare(chaos, fake_platform, scale, "rolling")
    fake_platform.set_latency(0.2)
    # A job on these accounts runs for seconds: each pool is told to stop while it runs one.
    for key in (workload.scrape_keys[0], workload.backfill_keys[0]):
        fake_platform.set_latency(SLOW_SECONDS, key)
    shutdowns: list[str] = []
    held: set[str] = set()
    with chaos.client() as client:
        start_jobs(client, workload)
        for name in WORKER_POOLS:
            queue = name.removeprefix("worker_")
            workload.job_ids.append(_extra_job(client, queue, workload))
            wait_until(
                lambda queue=queue: _held(chaos, queue),
                timeout=30,
                what=f"a job running on {queue}",
            )
            held |= _held(chaos, queue)
            grace = _grace_seconds(chaos.settings, queue)
            took = chaos.stack.terminate(name, grace)
            assert took < grace, f"{name} took {took:.1f}s to stop, over its {grace:.0f}s grace"
            shutdowns.append(f"{queue} {took:.1f}s")
            chaos.stack.start(name)
    faults = "SIGTERM, warm shutdown: " + ", ".join(shutdowns)
    settle(chaos, "SIGTERM rolling restart", faults, scale.drain_timeout, workload)
    rerun = count(chaos.database, "SELECT count(*) FROM jobs WHERE attempts > 1")
    held_ended = rows(
        chaos.database,
        "SELECT status, attempts FROM jobs WHERE job_id::text = ANY(:ids)",
        ids=list(held),
    )
    # The jobs running at each SIGTERM finished in the warm shutdown, and no job was claimed
    # twice: nothing ran twice.
    assert {tuple(row) for row in held_ended} == {("completed", 1)}, held_ended
    assert rerun == 0


def _held(chaos: FaultyStack, queue: str) -> set[str]:
    """Jobs a worker of `queue` is running (fan-out parents run on no worker)."""
    found = rows(
        chaos.database,
        "SELECT job_id::text FROM jobs WHERE queue = :queue AND status = 'running' "
        "AND children_total IS NULL",
        queue=queue,
    )
    return {row[0] for row in found}
