from __future__ import annotations

import uuid
from datetime import timedelta

import redis
from fastapi.testclient import TestClient

from gristmill.celery_app import redis_list_names
from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs.models import DeadLetter
from gristmill.jobs.types import JobStatus, JobType
from gristmill.settings import Settings
from tests.conftest import read_only_headers
from tests.factories import make_account, make_job
from tests.support.stack import wait_until

JOB_FIELDS = {
    "job_id",
    "job_type",
    "status",
    "progress",
    "result",
    "error_message",
    "created_at",
    "started_at",
    "completed_at",
    "account_key",
}


def _queued_messages(settings: Settings, queue: str) -> int:
    client = redis.Redis.from_url(settings.broker_url)
    return sum(int(client.llen(name)) for name in redis_list_names(queue))


def test_start_jobs_answer_202_with_location_and_send_one_message(
    api: TestClient, api_settings: Settings, clean_db: Database
) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    starts = [
        ("/api/jobs/scrape-all", None, "scrape_all", "default"),
        # An identical scrape-all is pending: force a second one through the old alias.
        ("/api/run-scraper?force=true", None, "scrape_all", "default"),
        ("/api/jobs/scrape-account/alice", None, "scrape_account", "high"),
        ("/api/jobs/scrape-platform/bluesky", None, "scrape_platform", "default"),
        ("/api/jobs/backfill-account/alice", {"days": 30}, "backfill_account", "low"),
    ]
    for path, body, job_type, queue in starts:
        before = _queued_messages(api_settings, queue)
        response = api.post(path, json=body)
        assert response.status_code == 202, (path, response.text)
        job = response.json()
        assert set(job) >= JOB_FIELDS
        assert job["job_type"] == job_type
        assert job["status"] == "pending"
        assert job["progress"] == 0
        assert job["queue"] == queue
        assert job["created_at"].endswith("Z") or job["created_at"].endswith("+00:00")
        assert response.headers["Location"] == f"/api/jobs/{job['job_id']}"
        assert api.get(response.headers["Location"]).json()["job_id"] == job["job_id"]
        # Sent right after the commit, by the api's dispatcher thread.
        wait_until(
            lambda queue=queue, before=before: _queued_messages(api_settings, queue) == before + 1,
            timeout=10,
            what=f"one message on {queue}",
        )
    backfill = api.get("/api/jobs", params={"job_type": "backfill_account"}).json()["items"][0]
    assert backfill["params"] == {"account_key": "alice", "days": 30}
    assert backfill["account_key"] == "alice"


def test_an_identical_start_returns_the_active_job_unless_forced(
    api: TestClient, clean_db: Database
) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    first = api.post("/api/jobs/scrape-account/alice")
    again = api.post("/api/jobs/scrape-account/alice")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["Location"] == first.headers["Location"]
    forced = api.post("/api/jobs/scrape-account/alice", params={"force": "true"})
    assert forced.status_code == 202
    assert forced.json()["job_id"] != first.json()["job_id"]
    other_days = api.post("/api/jobs/backfill-account/alice", json={"days": 3})
    more_days = api.post("/api/jobs/backfill-account/alice", json={"days": 4})
    assert (other_days.status_code, more_days.status_code) == (202, 202)
    api.post(f"/api/jobs/{first.json()['job_id']}/cancel").raise_for_status()
    # The first one ended: a start makes a new job again (a forced job is nobody's duplicate).
    assert api.post("/api/jobs/scrape-account/alice").status_code == 202


def test_start_job_input_errors(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_account(session)
        make_account(session, "sleepy", active=False)
    assert api.post("/api/jobs/scrape-account/nobody").status_code == 404
    assert api.post("/api/jobs/backfill-account/nobody", json={"days": 3}).status_code == 404
    inactive = api.post("/api/jobs/scrape-account/sleepy")
    assert inactive.status_code == 409
    assert "inactive" in inactive.json()["detail"]
    platform = api.post("/api/jobs/scrape-platform/friendster")
    assert platform.status_code == 422
    assert "unknown platform" in platform.json()["detail"]
    for body in ({"days": 0}, {"days": 366}, {"days": "many"}, {}, None):
        response = api.post("/api/jobs/backfill-account/alice", json=body)
        assert response.status_code == 422, body
    assert api.get("/api/jobs").json()["items"] == []


def test_list_is_newest_first_with_cursor_pages_and_filters(
    api: TestClient, clean_db: Database
) -> None:
    now = utc_now()
    with clean_db.transaction() as session:
        ids = [
            make_job(
                session,
                JobType.SCRAPE_ACCOUNT if i % 2 else JobType.SCRAPE_ALL,
                status=JobStatus.COMPLETED if i % 3 == 0 else JobStatus.PENDING,
                account_key="alice" if i % 2 else None,
                created_at=now - timedelta(minutes=i),
            ).job_id
            for i in range(7)
        ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/jobs", params=params).json()
        seen += [job["job_id"] for job in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(job_id) for job_id in ids]

    completed = api.get("/api/jobs", params={"status": "completed"}).json()["items"]
    assert [j["job_id"] for j in completed] == [str(ids[i]) for i in (0, 3, 6)]
    by_type = api.get("/api/jobs", params={"job_type": "scrape_all"}).json()["items"]
    assert {j["job_type"] for j in by_type} == {"scrape_all"}
    assert len(by_type) == 4
    alice = api.get("/api/jobs", params={"account_key": "alice", "limit": 2}).json()
    assert [j["job_id"] for j in alice["items"]] == [str(ids[1]), str(ids[3])]
    assert alice["next_cursor"] is not None


def test_list_rejects_bad_parameters(api: TestClient) -> None:
    for params in ({"limit": 0}, {"limit": 201}, {"status": "sleeping"}, {"job_type": "x"}):
        assert api.get("/api/jobs", params=params).status_code == 422, params
    bad_cursor = api.get("/api/jobs", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 422
    assert "cursor" in bad_cursor.json()["detail"]


def test_get_unknown_or_malformed_job(api: TestClient) -> None:
    assert api.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    malformed = api.get("/api/jobs/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["location"] == "path.job_id"


def test_cancel_pending_parent_cancels_children_and_finished_cannot_be_cancelled(
    api: TestClient, clean_db: Database
) -> None:
    with clean_db.transaction() as session:
        parent = make_job(session, JobType.SCRAPE_ALL, status=JobStatus.RUNNING)
        parent.children_total = 3
        pending = make_job(session, parent_job_id=parent.job_id, account_key="a")
        running = make_job(
            session, status=JobStatus.RUNNING, parent_job_id=parent.job_id, account_key="b"
        )
        done = make_job(
            session, status=JobStatus.COMPLETED, parent_job_id=parent.job_id, account_key="c"
        )
    response = api.post(f"/api/jobs/{parent.job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["completed_at"] is not None
    assert api.get(f"/api/jobs/{pending.job_id}").json()["status"] == "cancelled"
    assert api.get(f"/api/jobs/{running.job_id}").json()["status"] == "cancelled"
    assert api.get(f"/api/jobs/{done.job_id}").json()["status"] == "completed"

    again = api.post(f"/api/jobs/{parent.job_id}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]
    assert api.post(f"/api/jobs/{done.job_id}/cancel").status_code == 409
    assert api.post(f"/api/jobs/{uuid.uuid4()}/cancel").status_code == 404


def test_delete_only_finished_jobs(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        running = make_job(session, status=JobStatus.RUNNING)
        finished = make_job(session, status=JobStatus.FAILED)
    refused = api.delete(f"/api/jobs/{running.job_id}")
    assert refused.status_code == 409
    assert "cancel it first" in refused.json()["detail"]
    assert api.delete(f"/api/jobs/{finished.job_id}").status_code == 204
    assert api.get(f"/api/jobs/{finished.job_id}").status_code == 404
    assert api.delete(f"/api/jobs/{finished.job_id}").status_code == 404
    assert api.get(f"/api/jobs/{running.job_id}").json()["status"] == "running"


def test_dead_letters_list_and_retry(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_account(session)
        dead = make_job(session, status=JobStatus.FAILED, account_key="alice")
        session.add(
            DeadLetter(
                job_id=dead.job_id,
                job_type=dead.job_type,
                account_key="alice",
                error_message="HTTP 503 (gave up after 4 attempts)",
                attempts=4,
            )
        )
        plain_failure = make_job(session, status=JobStatus.FAILED)
    letters = api.get("/api/dead-letters").json()
    assert [item["job_id"] for item in letters["items"]] == [str(dead.job_id)]
    assert letters["items"][0]["attempts"] == 4

    rerun = api.post(f"/api/jobs/{dead.job_id}/retry")
    assert rerun.status_code == 202
    new_job = rerun.json()
    assert new_job["job_id"] != str(dead.job_id)
    assert new_job["retry_of_job_id"] == str(dead.job_id)
    assert new_job["status"] == "pending"
    assert new_job["params"] == {"account_key": "alice"}
    assert api.get("/api/dead-letters").json()["items"] == []

    assert api.post(f"/api/jobs/{dead.job_id}/retry").status_code == 409
    assert api.post(f"/api/jobs/{plain_failure.job_id}/retry").status_code == 409
    assert api.post(f"/api/jobs/{uuid.uuid4()}/retry").status_code == 404


def test_auth_is_required_on_every_api_route(api: TestClient) -> None:
    some_id = uuid.uuid4()
    routes = [
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{some_id}"),
        ("POST", "/api/jobs/scrape-all"),
        ("POST", f"/api/jobs/{some_id}/cancel"),
        ("DELETE", f"/api/jobs/{some_id}"),
        ("GET", "/api/dead-letters"),
        ("GET", "/api/accounts"),
    ]
    for method, path in routes:
        anonymous = api.request(method, path, headers={"Authorization": ""})
        assert anonymous.status_code == 401, path
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        wrong = api.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401, path
        assert wrong.json() == {"error": "unauthorized", "detail": "invalid bearer token"}
    read_only = read_only_headers()
    assert api.post("/api/jobs/scrape-all", headers=read_only).status_code == 403
    assert api.get("/api/jobs", headers=read_only).status_code == 200


def test_a_finished_child_of_a_running_parent_cannot_be_deleted(
    api: TestClient, clean_db: Database
) -> None:
    with clean_db.transaction() as session:
        parent = make_job(session, JobType.SCRAPE_ALL, status=JobStatus.RUNNING)
        parent.children_total = 2
        child = make_job(session, status=JobStatus.COMPLETED, parent_job_id=parent.job_id)
    refused = api.delete(f"/api/jobs/{child.job_id}")
    assert refused.status_code == 409
    assert "still running" in refused.json()["detail"]
    assert api.get(f"/api/jobs/{child.job_id}").status_code == 200
