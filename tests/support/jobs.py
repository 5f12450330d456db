"""Helpers for driving jobs through a running stack's api."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fakeplatform import FakePlatform
from tests.support.stack import wait_until

FINISHED = ("completed", "failed", "cancelled")


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/jobs/{job_id}")
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def wait_for_job(
    client: httpx.Client,
    job_id: str,
    statuses: tuple[str, ...] = FINISHED,
    *,
    timeout: float = 30,
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = get_job(client, job_id)
        return job if job["status"] in statuses else None

    found = wait_until(reached, timeout=timeout, what=f"job {job_id} to be {'/'.join(statuses)}")
    assert isinstance(found, dict)
    return found


def register_mastodon(
    client: httpx.Client,
    fake: FakePlatform,
    key: str,
    *,
    followers: int = 100,
    following: int = 10,
    statuses: int = 5,
    **extra: Any,
) -> None:
    fake.add_mastodon_account(
        key, followers=followers, following=following, statuses=statuses, **extra
    )
    register_unknown_mastodon(client, fake, key)


def register_unknown_mastodon(client: httpx.Client, fake: FakePlatform, key: str) -> None:
    """Register an account on the fake Mastodon that the platform does not have: its scrapes
    get a 404, a permanent failure (unless the account is added to `fake` first)."""
    response = client.post(
        "/api/accounts",
        json={
            "key": key,
            "platform": "mastodon",
            "handle": f"{key}@fake.social",
            "base_url": fake.url,
        },
    )
    response.raise_for_status()


def start(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> str:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id
