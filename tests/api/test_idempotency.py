"""The Idempotency-Key header on the routes that start jobs (IETF httpapi draft semantics)."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from gristmill.clock import utc_now
from gristmill.db import Database
from gristmill.jobs import idempotency
from gristmill.jobs.models import DeadLetter, IdempotencyKey, Job
from gristmill.jobs.types import JobStatus
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.factories import make_account, make_job
from tests.support.stack import wait_until


def _jobs(database: Database) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_the_same_key_and_request_return_the_first_response_and_start_one_job(
    api: TestClient, clean_db: Database
) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    headers = {"Idempotency-Key": '"order-7f3a"'}
    first = api.post("/api/jobs/backfill-account/alice", json={"days": 3}, headers=headers)
    # The same JSON spelled differently is the same request.
    again = api.post(
        "/api/jobs/backfill-account/alice",
        content=b'{ "days" : 3 }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers
    assert _jobs(clean_db) == 1
    # Without the key, the same start is an identical-job start: 200 with the same job.
    assert api.post("/api/jobs/backfill-account/alice", json={"days": 3}).status_code == 200


def test_the_same_key_for_another_request_is_refused(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    headers = {"Idempotency-Key": "k-1"}
    assert api.post(
        "/api/jobs/backfill-account/alice", json={"days": 3}, headers=headers
    ).is_success
    other_body = api.post("/api/jobs/backfill-account/alice", json={"days": 4}, headers=headers)
    other_path = api.post("/api/jobs/scrape-account/alice", headers=headers)
    for refused in (other_body, other_path):
        assert refused.status_code == 422
        assert "different request" in refused.json()["detail"]
    assert _jobs(clean_db) == 1


def test_keys_belong_to_the_token_that_sent_them(
    api: TestClient, api_settings: object, clean_db: Database
) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    first = api.post("/api/jobs/scrape-account/alice", headers={"Idempotency-Key": "shared"})
    assert first.status_code == 202
    # The read-only token may not start anything; the key's owner is still the write token.
    refused = api.post(
        "/api/jobs/scrape-all",
        headers={"Idempotency-Key": "shared", "Authorization": f"Bearer {READ_TOKEN}"},
    )
    assert refused.status_code == 403
    with clean_db.transaction() as session:
        owners = session.scalars(select(IdempotencyKey.principal)).all()
    assert len(owners) == 1
    assert WRITE_TOKEN not in owners[0]  # a digest, never the token itself


def test_a_request_still_in_flight_with_the_key_is_409(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_account(session)
    headers = {"Idempotency-Key": "slow-one"}
    # Hold the api's intake on a lock so the first request stays in flight.
    blocker = clean_db.sessionmaker()
    blocker.begin()
    blocker.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
    answers: list[int] = []
    first = threading.Thread(
        target=lambda: answers.append(
            api.post("/api/jobs/scrape-account/alice", headers=headers).status_code
        )
    )
    first.start()
    wait_until(lambda: _key_in_flight(clean_db), timeout=10, what="the first request's key")
    second = api.post("/api/jobs/scrape-account/alice", headers=headers)
    assert second.status_code == 409
    assert "in progress" in second.json()["detail"]
    blocker.commit()
    blocker.close()
    first.join(30)
    assert answers == [202]
    replay = api.post("/api/jobs/scrape-account/alice", headers=headers)
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (202, "true")


def test_a_refused_start_is_replayed_and_an_expired_key_is_new(
    api: TestClient, clean_db: Database
) -> None:
    headers = {"Idempotency-Key": "ghost-key"}
    missing = api.post("/api/jobs/scrape-account/ghost", headers=headers)
    assert missing.status_code == 404
    with clean_db.transaction() as session:
        make_account(session, "ghost")
    replayed = api.post("/api/jobs/scrape-account/ghost", headers=headers)
    assert (replayed.status_code, replayed.json()) == (404, missing.json())
    with clean_db.transaction() as session:
        session.execute(update(IdempotencyKey).values(created_at=utc_now() - timedelta(hours=25)))
    assert api.post("/api/jobs/scrape-account/ghost", headers=headers).status_code == 202
    with clean_db.transaction() as session:
        session.execute(update(IdempotencyKey).values(created_at=utc_now() - timedelta(hours=25)))
        assert idempotency.delete_expired(session) == 1


def test_a_dead_letter_rerun_with_a_key_runs_once(api: TestClient, clean_db: Database) -> None:
    with clean_db.transaction() as session:
        make_account(session)
        failed = make_job(session, status=JobStatus.FAILED, account_key="alice")
        session.add(
            DeadLetter(
                job_id=failed.job_id,
                job_type=failed.job_type,
                account_key="alice",
                error_message="gave up",
                attempts=4,
            )
        )
    headers = {"Idempotency-Key": "rerun-1"}
    first = api.post(f"/api/jobs/{failed.job_id}/retry", headers=headers)
    again = api.post(f"/api/jobs/{failed.job_id}/retry", headers=headers)
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (202, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_malformed_key_is_refused(api: TestClient, clean_db: Database) -> None:
    for bad in ("", "has space", "x" * 300):
        response = api.post("/api/jobs/scrape-all", headers={"Idempotency-Key": bad})
        assert response.status_code == 422, bad
        assert "Idempotency-Key" in response.text


def _key_in_flight(database: Database) -> bool:
    with database.transaction() as session:
        return bool(
            session.scalar(
                select(func.count())
                .select_from(IdempotencyKey)
                .where(IdempotencyKey.status_code == idempotency.IN_FLIGHT)
            )
        )
