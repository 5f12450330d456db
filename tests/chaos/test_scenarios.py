"""The chaos scenarios of issue 8, one after another on one stack (tests/chaos/conftest.py).

One file on purpose: `make test` runs pytest-xdist with `--dist loadfile`, so the scenarios
share one worker and one private stack instead of two stacks fighting over the two cores.
Every scenario ends in `settle`: every job row checked, one line of the table.
"""

from __future__ import annotations

import os
import random
import signal
import time

import httpx
import pytest

from gristmill.jobs.types import JOB_TYPES
from gristmill.settings import Settings
from tests.chaos.ledger import count, rows, running_jobs
from tests.chaos.report import settle
from tests.chaos.scale import Scale
from tests.chaos.workload import Workload, declare, start_jobs
from tests.fakeplatform import FakeFailure, FakePlatform
from tests.support.faulty import WORKER_POOLS, FaultyStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


# A job on the rolling restart's slow accounts runs this long per request.
SLOW_SECONDS = 1.5
# An answer while PostgreSQL is down comes at once: the api must not hang on a dead database.
DOWN_ANSWER_SECONDS = 5.0
SCHEDULERS = ("scheduler", "scheduler_b")
FIRED_ELSEWHERE = "already fired elsewhere"


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


def _answers_unavailable(client: httpx.Client, method: str, path: str) -> float:
    began = time.monotonic()
    response = client.request(method, path)
    took = time.monotonic() - began
    assert response.status_code == 503, (method, path, response.status_code, response.text)
    assert int(response.headers["Retry-After"]) > 0
    assert "PostgreSQL" in response.json()["detail"]
    assert took < DOWN_ANSWER_SECONDS, f"{method} {path} took {took:.1f}s while PostgreSQL was down"
    return took


def test_postgres_restart_mid_run(
    chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale
) -> None:
    workload = declare(chaos, fake_platform, scale, "pg")
    fake_platform.set_latency(0.2)
    with chaos.client(timeout=DOWN_ANSWER_SECONDS * 2) as client:
        start_jobs(client, workload)
        wait_until(lambda: running_jobs(chaos.database) > 0, timeout=30, what="running jobs")
        chaos.database.dispose()
        chaos.postgres.stop()
        probes: list[float] = []
        back_at = time.monotonic() + scale.postgres_down_seconds
        # The outage lasts its time whatever we do; the api is asked all along.
        while time.monotonic() < back_at:
            probes.append(_answers_unavailable(client, "GET", "/api/jobs"))
            path = f"/api/jobs/scrape-account/{workload.scrape_keys[0]}?force=true"
            probes.append(_answers_unavailable(client, "POST", path))
            time.sleep(0.5)
        chaos.postgres.start()
    faults = (
        f"PostgreSQL down {scale.postgres_down_seconds:.0f}s; {len(probes)} api calls all 503,"
        f" slowest {max(probes):.2f}s"
    )
    settle(chaos, "PostgreSQL restart", faults, scale.drain_timeout, workload)


def test_redis_restart_with_its_data_lost_mid_run(
    chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale
) -> None:
    workload = declare(chaos, fake_platform, scale, "redis")
    fake_platform.set_latency(0.2)
    with chaos.client() as client:
        start_jobs(client, workload)
        wait_until(lambda: running_jobs(chaos.database) > 0, timeout=30, what="running jobs")
        queued = sum(chaos.queued(queue) for queue in ("high", "default", "low"))
        chaos.broker.stop()  # no persistence: it comes back empty
        # Accepted while Redis is down, sent once it is back.
        late = f"/api/jobs/backfill-account/{workload.backfill_keys[0]}?force=true"
        response = client.post(late, json={"days": workload.days})
        assert response.status_code == 202, response.text
        workload.job_ids.append(response.json()["job_id"])
        time.sleep(scale.redis_down_seconds)  # the outage itself: nothing to wait for
        chaos.broker.start()
    faults = f"Redis down {scale.redis_down_seconds:.0f}s, back empty ({queued} messages lost)"
    settle(chaos, "Redis restart, data lost", faults, scale.drain_timeout, workload)


def _scheduled_runs(chaos: FaultyStack) -> tuple[list[tuple[str, str]], list[str]]:
    """(entry, job) per recorded slot, and the top-level jobs the schedule created."""
    runs = rows(chaos.database, "SELECT entry, job_id::text FROM schedule_runs ORDER BY slot_at")
    jobs = rows(
        chaos.database,
        "SELECT job_id::text FROM jobs WHERE parent_job_id IS NULL "
        "AND job_type IN ('health_check', 'daily_scrape_all')",
    )
    return [(run[0], run[1]) for run in runs], [job[0] for job in jobs]


def test_two_schedulers_fire_each_slot_once(
    chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale
) -> None:
    stack = chaos.stack
    workload: Workload | None = None
    every = {"HEALTH_CHECK_INTERVAL_SECONDS": "1"}
    if scale.name == "full":
        # A cron entry too, over two minute boundaries; its run fans out over real accounts.
        workload = declare(chaos, fake_platform, scale, "sched", backfills=False)
        every["DAILY_SCRAPE_CRON"] = "* * * * *"
    stack.kill("scheduler", signal.SIGTERM)
    stack.commands["scheduler_b"] = stack.commands["scheduler"]
    logged_before = {name: len(stack.log(name)) for name in SCHEDULERS}
    for name in SCHEDULERS:
        files = {
            "BEAT_SCHEDULE_FILE": str(stack.log_dir / f"{name}-schedule"),
            "BEAT_HEARTBEAT_FILE": str(stack.log_dir / f"{name}.heartbeat"),
        }
        stack.start(name, {**every, **files})
    try:
        time.sleep(scale.schedulers_seconds)  # both run side by side for this long
    finally:
        for name in SCHEDULERS:
            stack.kill(name, signal.SIGTERM)
        del stack.commands["scheduler_b"]
        stack.start("scheduler")
    runs, jobs = _scheduled_runs(chaos)
    refused = {
        name: stack.log(name)[logged_before[name] :].count(FIRED_ELSEWHERE) for name in SCHEDULERS
    }
    slots = {entry: sum(1 for e, _ in runs if e == entry) for entry, _ in runs}
    faults = (
        f"2 beats {scale.schedulers_seconds:.0f}s: {len(runs)} slots, {len(set(jobs))} jobs,"
        f" {sum(refused.values())} second firings refused"
    )
    settle(chaos, "two schedulers", faults, scale.drain_timeout, workload)
    # Both really fired: each had slots taken by the other first.
    assert sum(refused.values()) >= 1, refused
    # Beat takes a few seconds to start on a busy machine: a few slots of 1 s at least.
    assert slots.get("health-check", 0) >= scale.schedulers_seconds / 3, slots
    if workload is not None:
        assert slots.get("daily-scrape-all", 0) >= 2, slots
    # One job per slot at most, and every scheduled job belongs to a recorded slot.
    assert len(set(jobs)) == len(jobs)
    assert set(jobs) == {job_id for _, job_id in runs}, (jobs, runs)
    assert len(jobs) <= len(runs)


def _circuit(client: httpx.Client) -> dict[str, object] | None:
    hosts = client.get("/api/platforms").json()["hosts"]
    return dict(hosts[0]["circuit"]) if hosts else None


def _dead_letters(client: httpx.Client) -> int:
    return len(client.get("/api/dead-letters").json()["items"])


def _hold_outage(chaos: FaultyStack, client: httpx.Client, seconds: float) -> None:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        assert _dead_letters(client) == 0
        assert "failed" not in chaos.statuses()
        time.sleep(1)


def test_platform_down_for_a_while(
    chaos: FaultyStack, fake_platform: FakePlatform, scale: Scale
) -> None:
    workload = declare(chaos, fake_platform, scale, "down")
    fake_platform.go_down(FakeFailure(503))
    with chaos.client() as client:
        start_jobs(client, workload)
        wait_until(
            lambda: (_circuit(client) or {}).get("state") == "open",
            timeout=30,
            what="the breaker to open",
        )
        # Half the outage every call is answered 503, half it is answered too late (each
        # call times out): jobs wait behind the open circuit either way, not burning their
        # retries into dead letters.
        _hold_outage(chaos, client, scale.outage_seconds / 2)
        fake_platform.come_back()
        fake_platform.set_latency(chaos.settings.scraper_timeout_seconds + 2)
        _hold_outage(chaos, client, scale.outage_seconds / 2)
        circuit = _circuit(client)
        assert circuit is not None
        fake_platform.set_latency(0)
        failed_requests = fake_platform.request_count()
        figures = settle(
            chaos,
            "platform down",
            f"every call 503, then timing out, for {scale.outage_seconds:.0f}s+; breaker opened"
            f" {circuit['opened_count']}x, {failed_requests} failed calls",
            scale.drain_timeout,
            workload,
        )
        wait_until(
            lambda: (_circuit(client) or {}).get("state") == "closed",
            timeout=30,
            what="the breaker to close",
        )
    assert figures.dead_letters == 0
