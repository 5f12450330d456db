"""`make bench`: Gristmill against plain peers measured in the same run, on this machine.

1. Start endpoint, 32 concurrent clients, one api process: Gristmill's
   `POST /api/jobs/scrape-account/{key}` against a plain FastAPI endpoint doing one INSERT and
   one `send_task` (bench/plain_api.py).
2. Single-account jobs drained by the Procfile's `high` pool against a plain Celery no-op task
   with the same pool settings (bench/plain_celery.py), in alternating rounds (the median
   round of each is reported).
3. Start latency on idle workers: POST to `running` against plain Celery's enqueue-to-start
   (the bar), and for context against the plain FastAPI endpoint's POST to its task starting.
4. scrape-all at 100 ms platform latency; listing and cleanup at 1M job rows.
5. The console's push updates: 100 WebSocket clients on one api process while 50 jobs/s change
   state (bench/streams.py): delivery latency p50/p99.

Figures print as they come; a summary table with ratios ends the run, and the chart of ratios
is written to docs/benchmarks.png.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.bulk import bench_cleanup, bench_listing, bench_scrape_all
from bench.environment import bench_env
from bench.load import require_wrk
from bench.report import Figure, chart, machine, table
from bench.start_endpoint import CONNECTIONS, bench_start_endpoint
from bench.streams import bench_streams
from bench.workers import (
    DrainResult,
    bench_gristmill_drain,
    bench_gristmill_start_latency,
    bench_plain_drain,
    bench_plain_endpoint_latency,
    bench_plain_start_latency,
    median,
    median_round,
)

CHART = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.png"
SECTIONS = ("start", "drain", "latency", "scrape_all", "listing", "cleanup", "streams")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these")
    parser.add_argument("--rounds", type=int, default=3, help="start endpoint rounds per peer")
    parser.add_argument("--seconds", type=int, default=15, help="seconds per load round")
    parser.add_argument("--drain-jobs", type=int, default=2000)
    parser.add_argument("--drain-rounds", type=int, default=3, help="drain rounds per peer")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=int(os.environ.get("BENCH_ACCOUNTS", 5000)))
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 1_000_000)))
    parser.add_argument("--chart", type=Path, default=CHART)
    args = parser.parse_args()
    sections = set(args.only or SECTIONS)
    if "start" in sections:
        require_wrk()
    print(f"machine: {machine()}")
    figures: list[Figure] = []
    with bench_env() as env:
        if "start" in sections:
            ours, plain = bench_start_endpoint(env, rounds=args.rounds, seconds=args.seconds)
            print(ours.line("start endpoint, Gristmill"))
            print(plain.line("start endpoint, plain FastAPI"))
            ratio = ours.requests_per_second / plain.requests_per_second
            figures.append(
                Figure(
                    f"POST start, {CONNECTIONS} clients: req/s",
                    f"{ours.requests_per_second:,.0f} req/s",
                    f"{plain.requests_per_second:,.0f} req/s",
                    ratio,
                    ">= 1.0x",
                    ratio >= 1.0,
                    bar_ratio=1.0,
                )
            )
            figures.append(
                Figure(
                    f"POST start, {CONNECTIONS} clients: p99",
                    f"{ours.p99_ms:.0f} ms",
                    f"{plain.p99_ms:.0f} ms",
                    ours.p99_ms / plain.p99_ms,
                    "<= 100 ms",
                    ours.p99_ms <= 100,
                    higher_is_better=False,
                )
            )
        if "drain" in sections:
            ours_rounds: list[DrainResult] = []
            plain_rounds: list[DrainResult] = []
            for _ in range(args.drain_rounds):
                ours_rounds.append(bench_gristmill_drain(env, args.drain_jobs))
                plain_rounds.append(bench_plain_drain(env, args.drain_jobs))
            print(
                "drain rounds: Gristmill "
                + ", ".join(f"{r.per_second:,.0f}" for r in ours_rounds)
                + " jobs/s; plain Celery "
                + ", ".join(f"{r.per_second:,.0f}" for r in plain_rounds)
                + " tasks/s"
            )
            ours_drain, plain_drain = median_round(ours_rounds), median_round(plain_rounds)
            print(
                f"drain {args.drain_jobs} jobs: Gristmill {ours_drain.per_second:,.0f} jobs/s "
                f"({ours_drain.seconds:.2f} s), plain Celery {plain_drain.per_second:,.0f} "
                f"tasks/s ({plain_drain.seconds:.2f} s)"
            )
            print(
                f"  CPU per job: Gristmill worker main {ours_drain.main_ms_per_job:.2f} ms, "
                f"pool {ours_drain.pool_ms_per_job:.2f} ms; plain Celery main "
                f"{plain_drain.main_ms_per_job:.2f} ms, pool {plain_drain.pool_ms_per_job:.2f} ms"
            )
            ratio = ours_drain.per_second / plain_drain.per_second
            figures.append(
                Figure(
                    f"drain {args.drain_jobs} single-account jobs",
                    f"{ours_drain.per_second:,.0f} jobs/s",
                    f"{plain_drain.per_second:,.0f} tasks/s",
                    ratio,
                    ">= 0.5x",
                    ratio >= 0.5,
                    bar_ratio=0.5,
                )
            )
        if "latency" in sections:
            ours_ms = bench_gristmill_start_latency(env, args.latency_samples)
            plain_ms = bench_plain_start_latency(env, args.latency_samples)
            endpoint_ms = bench_plain_endpoint_latency(env, args.latency_samples)
            print(
                f"start latency p50: Gristmill POST to running {median(ours_ms):.1f} ms, "
                f"plain Celery enqueue to start {median(plain_ms):.1f} ms, "
                f"plain FastAPI + Celery POST to start {median(endpoint_ms):.1f} ms"
            )
            ratio = median(ours_ms) / median(plain_ms)
            figures.append(
                Figure(
                    "start latency p50 (idle workers)",
                    f"{median(ours_ms):.1f} ms",
                    f"{median(plain_ms):.1f} ms",
                    ratio,
                    "<= 2.0x",
                    ratio <= 2.0,
                    bar_ratio=2.0,
                    higher_is_better=False,
                )
            )
            figures.append(
                Figure(
                    "start latency p50, POST to start both sides",
                    f"{median(ours_ms):.1f} ms",
                    f"{median(endpoint_ms):.1f} ms",
                    median(ours_ms) / median(endpoint_ms),
                    "context",
                    None,
                    higher_is_better=False,
                )
            )
        if "scrape_all" in sections:
            bulk = bench_scrape_all(env, args.accounts)
            print(
                f"scrape-all: {bulk.accounts} accounts at 100 ms latency in {bulk.seconds:.1f} s "
                f"= {bulk.per_second:,.0f} accounts/s ({bulk.succeeded} succeeded)"
            )
            figures.append(
                Figure(
                    f"scrape-all, {bulk.accounts} accounts at 100 ms",
                    f"{bulk.per_second:,.0f} accounts/s",
                    "-",
                    None,
                    ">= 600/s",
                    bulk.per_second >= 600,
                )
            )
        if "listing" in sections:
            listing = bench_listing(env, args.rows, samples=200)
            for name, (p50, p99) in listing.items():
                print(
                    f"list jobs at {args.rows:,} rows, {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
                )
            worst = max(p99 for _, p99 in listing.values())
            figures.append(
                Figure(
                    f"GET /api/jobs at {args.rows:,} rows, worst p99",
                    f"{worst:.1f} ms",
                    "-",
                    None,
                    "<= 20 ms",
                    worst <= 20,
                )
            )
        if "cleanup" in sections:
            cleanup = bench_cleanup(env, args.rows)
            print(
                f"cleanup: {cleanup.deleted:,} finished jobs deleted in {cleanup.seconds:.1f} s; "
                f"longest transaction seen {cleanup.longest_transaction_seconds:.2f} s"
            )
            figures.append(
                Figure(
                    f"cleanup of {cleanup.deleted:,} finished jobs",
                    f"{cleanup.seconds:.1f} s, "
                    f"longest txn {cleanup.longest_transaction_seconds:.2f} s",
                    "-",
                    None,
                    "<= 60 s, txn <= 1 s",
                    cleanup.seconds <= 60 and cleanup.longest_transaction_seconds <= 1,
                )
            )
        if "streams" in sections:
            env.reset()
            env.stack.start("api")
            env.stack.wait_for_api()
            try:
                streams = bench_streams(env.stack.api_url, env.env)
            finally:
                env.stack.kill("api")
            figures.append(
                Figure(
                    f"streams: {streams.clients} WebSocket clients, "
                    f"{streams.jobs_per_second:g} jobs/s",
                    f"p50 {streams.p50:.0f} ms, p99 {streams.p99:.0f} ms, "
                    f"{streams.deliveries}/{streams.expected} delivered",
                    "-",
                    None,
                    "within 1 s, all delivered",
                    streams.p99 <= 1000 and streams.deliveries == streams.expected,
                )
            )
    print()
    print(table(figures))
    if any(f.ratio is not None for f in figures):
        chart(figures, args.chart)
        print(f"\nchart of the ratios: {args.chart}")


if __name__ == "__main__":
    main()
