"""Property-based fuzzing of the whole OpenAPI surface (schemathesis) against the real api.

Every operation the running api publishes in /openapi.json is generated for, valid and invalid
alike (schemathesis' examples, coverage and fuzzing phases), and sent over HTTP to the api
process (uvicorn, middleware, error handlers, PostgreSQL, the job intake), with the read-write
token and with the read-only token. Every answer must be below 500, documented in the OpenAPI
document (status, content type, headers, body schema), and, when it is an error,
`{"error": <kind>, "detail": <what is wrong>}` (tests/api/fuzz_checks.py). The api's log must
not show an unhandled error afterwards.

schemathesis runs as its CLI, its primary interface (its pytest plugin does not work with the
pytest pinned here). `make test` runs GRISTMILL_FUZZ_EXAMPLES (default 10) cases per operation
and phase, deterministically: the same cases every run. `make fuzz` runs many more with a fresh
seed. Event streams are read until their first event or the request timeout, so a streaming
route needs no exclusion.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gristmill.db import Database
from gristmill.jobs.models import DeadLetter
from gristmill.jobs.types import JobStatus, JobType
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.factories import make_account, make_job
from tests.support.routes import app_routes
from tests.support.stack import REPO_ROOT, Stack

EXAMPLES = int(os.environ.get("GRISTMILL_FUZZ_EXAMPLES", "10"))
DETERMINISTIC = os.environ.get("GRISTMILL_FUZZ_DETERMINISTIC", "1") == "1"
# Path parameters, by name, and the seeded values half their generated values are drawn from.
PATH_PARAMETER_VALUES = {
    "account_key": "accounts",
    "key": "accounts",
    "job_id": "jobs",
    "platform": "platforms",
}
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "error_body_says_what_is_wrong",
]


def _seed(database: Database) -> dict[str, list[str]]:
    """Rows for the generated requests to find: an account, jobs in every state, a dead
    letter. Half the generated path parameters take one of these values (schemathesis
    dictionaries), so requests get past "not found" into the code behind it."""
    with database.transaction() as session:
        make_account(session, key="gristmill-mastodon")
        make_account(session, key="gristmill-bluesky", platform="bluesky")
        jobs = [
            make_job(session, status=status, account_key="gristmill-mastodon")
            for status in JobStatus
        ]
        dead = next(job for job in jobs if job.status == JobStatus.FAILED)
        session.add(
            DeadLetter(
                job_id=dead.job_id,
                job_type=dead.job_type,
                account_key=dead.account_key,
                error_message="HTTP 503 (gave up after 4 attempts)",
                attempts=4,
            )
        )
        make_job(session, JobType.SCRAPE_ALL, status=JobStatus.RUNNING)
        return {
            "accounts": ["gristmill-mastodon", "gristmill-bluesky"],
            "jobs": [str(job.job_id) for job in jobs],
            "platforms": ["mastodon", "bluesky"],
        }


def _config_file(values: dict[str, list[str]], path: Path) -> Path:
    lines = []
    for name, entries in values.items():
        quoted = ", ".join(f'"{entry}"' for entry in entries)
        lines += [f"[dictionaries.{name}]", f"values = [{quoted}]", ""]
    lines.append("[parameters]")
    for parameter, dictionary in PATH_PARAMETER_VALUES.items():
        lines.append(f'"path.{parameter}" = {{ dictionary = "{dictionary}", probability = 0.5 }}')
    path.write_text("\n".join(lines) + "\n")
    return path


def _schemathesis(
    api_url: str, token: str, config: Path, report: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{api_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        # The coverage phase (every boundary and negative value of every parameter) costs the
        # most; with the read-only token every write is refused before its input is read, so
        # it runs with the write token only.
        "examples,coverage,fuzzing" if token == WRITE_TOKEN else "examples,fuzzing",
        "--max-examples",
        str(EXAMPLES),
        "--request-timeout",
        "5",
        # One worker: with threads, CPython 3.11's ast.parse (hypothesis describing lambdas)
        # can fail with "AST constructor recursion depth mismatch"; and the api has one core.
        "--workers",
        "1",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    # Deterministic mode keeps no example database; a random run must not write one either.
    command += (
        ["--generation-deterministic"] if DETERMINISTIC else ["--generation-database", "none"]
    )
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.api.fuzz_checks",
        "PYTHONPATH": str(REPO_ROOT),
    }
    # Run from the report's directory: schemathesis keeps a cache under its working directory.
    return subprocess.run(
        command,
        cwd=report.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("token", [WRITE_TOKEN, READ_TOKEN], ids=["write-token", "read-token"])
def test_every_operation_answers_below_500_with_a_documented_json_body(
    token: str, api_process: Stack, api_db: Database, tmp_path: Path
) -> None:
    config = _config_file(_seed(api_db), tmp_path / "schemathesis.toml")
    log_before = len(api_process.log("api"))
    report_path = tmp_path / "report.json"

    run = _schemathesis(api_process.api_url, token, config, report_path)

    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    new_log = api_process.log("api")[log_before:]
    assert "unhandled_error" not in new_log, new_log[-5000:]
    assert "Traceback" not in new_log, new_log[-5000:]
    report = json.loads(report_path.read_text())
    operations, cases = report["operations"], report["test_cases"]
    # Every operation of the schema was generated for; none skipped or errored.
    assert operations["tested"] == operations["total"] >= 16, operations
    assert cases["errored"] == 0, report["errors"]
    assert report["errors"] == []
    # The coverage phase alone gives every operation EXAMPLES cases or more; without it,
    # operations with few inputs (no parameters, no body) run out of distinct cases sooner.
    per_operation = EXAMPLES if token == WRITE_TOKEN else EXAMPLES // 2
    assert cases["generated"] >= operations["tested"] * per_operation, cases
    print(
        f"fuzz ({'write' if token == WRITE_TOKEN else 'read'} token): {cases['generated']} "
        f"cases over {operations['tested']} operations in {report['running_time']:.1f} s"
    )


def test_the_fuzzed_schema_holds_every_route_and_the_rest_survive_hostile_requests(
    api_process: Stack, api_db: Database
) -> None:
    """Every HTTP route in the schema is fuzzed above; the routes left out of it on purpose
    (docs, /metrics, pages) get a fixed set of hostile requests here, so no route the app
    serves escapes both."""
    from services.api.app import create_app
    from tests.support.services import settings_from_env

    app = create_app(settings_from_env(api_process.env))
    published = set(app.openapi()["paths"])
    routes = [route for route in app_routes(app) if not route.websocket]
    assert {route.path for route in routes if route.in_schema} <= published
    outside = [route for route in routes if route.path not in published]
    assert {"/metrics", "/docs"} <= {route.path for route in outside}
    long = "k" * 10_000
    headers = {"Authorization": f"Bearer {WRITE_TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=api_process.api_url, timeout=10, headers=headers) as client:
        for route in outside:
            path = re.sub(r"\{[^}]+\}", "x%00y", route.path)
            for method in sorted(route.methods | {"POST", "DELETE"}):
                for query in ["", "?q=%00", f"?{long}={long}", "?q=%ff%fe"]:
                    request = client.build_request(method, path + query, content=b"\xff{" * 64)
                    response = client.send(request, stream=True)
                    try:
                        assert response.status_code < 500, (method, path + query)
                        if response.status_code >= 400:
                            response.read()
                            body = response.json()
                            assert set(body) == {"error", "detail"}, (method, path, body)
                    finally:
                        response.close()
