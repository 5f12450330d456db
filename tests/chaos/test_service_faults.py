"""The services under the stack fail mid-run: PostgreSQL restarts, Redis restarts empty."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.chaos.ledger import running_jobs
from tests.chaos.report import settle
from tests.chaos.scale import Scale
from tests.chaos.workload import declare, start_jobs
from tests.fakeplatform import FakePlatform
from tests.support.faulty import FaultyStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

# An answer while PostgreSQL is down comes at once: the api must not hang on a dead database.
DOWN_ANSWER_SECONDS = 5.0


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
