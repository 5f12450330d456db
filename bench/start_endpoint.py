"""Start endpoint throughput and latency: Gristmill's api against the plain FastAPI peer.

Both run as one uvicorn process with the same flags, with no worker consuming (messages pile up
in Redis), against the same PostgreSQL and Redis servers. Rounds alternate between the two so
that the machine's noise falls on both alike; the median round of each is reported.
"""

from __future__ import annotations

import statistics

from sqlalchemy import func, select

from bench.environment import TOKEN, BenchEnv, Process, wait_for_http
from bench.load import LoadResult, keys_for, run_wrk
from gristmill.jobs.models import Job
from tests.support.stack import free_port

CONNECTIONS = 32
THREADS = 2


def _uvicorn(app: str, port: int) -> list[str]:
    # The same command line as the Procfile's api process.
    return [
        "uvicorn",
        app,
        "--factory",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--no-access-log",
    ]


def start_plain_api(env: BenchEnv) -> tuple[Process, int]:
    """The plain FastAPI peer (bench/plain_api.py), started and answering, and its port."""
    port = free_port()
    plain = Process(
        _uvicorn("bench.plain_api:create_app", port),
        {**env.env, "CELERY_BROKER_URL": env.peer_broker_url},
        env.log_dir / "plain_api.log",
    )
    plain.start()
    wait_for_http(f"http://127.0.0.1:{port}/docs")
    return plain, port


def bench_start_endpoint(
    env: BenchEnv, *, rounds: int, seconds: int
) -> tuple[LoadResult, LoadResult]:
    """Returns (gristmill, plain) median rounds."""
    env.reset()
    per_thread = 2500 * seconds
    prefixes = ["w"] + [f"r{r}" for r in range(rounds)]
    env.add_accounts(
        [key for prefix in prefixes for key in keys_for(prefix, THREADS, per_thread)],
        fake=False,
    )
    env.vacuum()
    plain, plain_port = start_plain_api(env)
    env.stack.start("api")
    env.stack.wait_for_api()
    ours: list[LoadResult] = []
    theirs: list[LoadResult] = []
    try:
        for round_number in range(rounds + 1):
            warmup = round_number == 0
            key_prefix = "w" if warmup else f"r{round_number - 1}"
            duration = 3 if warmup else seconds
            theirs.append(
                run_wrk(
                    f"http://127.0.0.1:{plain_port}",
                    "/jobs/",
                    key_prefix,
                    token=TOKEN,
                    connections=CONNECTIONS,
                    threads=THREADS,
                    seconds=duration,
                )
            )
            ours.append(
                run_wrk(
                    env.stack.api_url,
                    "/api/jobs/scrape-account/",
                    key_prefix,
                    token=TOKEN,
                    connections=CONNECTIONS,
                    threads=THREADS,
                    seconds=duration,
                )
            )
            if warmup:
                ours.clear()
                theirs.clear()
    finally:
        env.stack.kill("api")
        plain.stop()
    with env.database.transaction() as session:
        created = int(session.scalar(select(func.count()).select_from(Job)) or 0)
    print(
        f"  jobs created: {created:,}; errors: {sum(r.errors for r in ours)} (Gristmill), "
        f"{sum(r.errors for r in theirs)} (plain)"
    )
    return _median(ours), _median(theirs)


def _median(results: list[LoadResult]) -> LoadResult:
    ordered = sorted(results, key=lambda r: r.requests_per_second)
    middle = ordered[len(ordered) // 2]
    return LoadResult(
        middle.requests_per_second,
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.requests for r in results),
        sum(r.errors for r in results),
    )
