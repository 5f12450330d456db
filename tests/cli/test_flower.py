"""`gristmill flower`, as the Procfile runs it: Flower behind basic auth sees our workers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gristmill.jobs.types import JOB_TYPES, JobType
from tests.support.jobs import start, wait_for_job
from tests.support.stack import Stack, free_port, wait_until

pytestmark = pytest.mark.integration

AUTH = ("operator", "flower-test-password")


@pytest.fixture
def flower(stack: Stack) -> Iterator[str]:
    port = free_port()
    stack.start("flower", {"FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": ":".join(AUTH)})
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if stack.processes["flower"].poll() is not None:
            raise AssertionError(f"flower exited: {stack.log('flower')[-2000:]}")
        try:
            return httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=40, what="Flower to answer")
    yield url
    stack.kill("flower")


def test_flower_lists_our_workers_and_task_names(
    stack: Stack, stack_api: httpx.Client, flower: str
) -> None:
    assert httpx.get(f"{flower}/api/workers").status_code == 401
    assert httpx.get(f"{flower}/api/workers", auth=("operator", "wrong")).status_code == 401

    def workers() -> dict[str, dict[str, object]] | None:
        response = httpx.get(
            f"{flower}/api/workers", params={"refresh": "1"}, auth=AUTH, timeout=10
        )
        response.raise_for_status()
        found: dict[str, dict[str, object]] = response.json()
        pools = {name.split("@", 1)[0] for name in found}
        return found if {"high", "default", "low"} <= pools else None

    found = wait_until(workers, timeout=30, interval=1, what="the three worker pools")
    assert isinstance(found, dict)
    high = next(info for name, info in found.items() if name.startswith("high@"))
    registered = high.get("registered")
    assert isinstance(registered, list)
    assert JOB_TYPES[JobType.SCRAPE_ACCOUNT].task_name in registered

    # Task events are off by default; Flower switches them on in every worker within seconds
    # of starting (its enable_events timer), and from then on lists each task it saw run.
    def task_types() -> list[str]:
        response = httpx.get(f"{flower}/api/task/types", auth=AUTH, timeout=10)
        response.raise_for_status()
        names: list[str] = response.json()["task-types"]
        return names

    def seen_by_flower() -> bool:
        wait_for_job(stack_api, start(stack_api, "/api/jobs/scrape-platform/bluesky"))
        return JOB_TYPES[JobType.SCRAPE_PLATFORM].task_name in task_types()

    wait_until(seen_by_flower, timeout=40, interval=0.5, what="a task run seen by Flower")
    assert AUTH[1] not in stack.log("flower")


def test_flower_refuses_to_start_without_basic_auth(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "gristmill"), "flower"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "FLOWER_BASIC_AUTH is not set" in result.stderr
