"""`gristmill queues|workers|schedules|dead-letters`: what the console's overview shows."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from gristmill.cli.context import JsonOption, api_client
from gristmill.cli.output import age, err, local_time, print_json, status_text, table


def register(app: typer.Typer) -> None:
    app.command("queues")(queues)
    app.command("workers")(workers)
    app.command("schedules")(schedules)
    app.command("dead-letters")(dead_letters)


def queues(as_json: JsonOption = False) -> None:
    """Messages waiting per queue and the age of the oldest."""
    with api_client() as client:
        body = client.get("/api/queues")
    if as_json:
        print_json(body)
        return
    table(
        None,
        ("queue", "waiting", "oldest"),
        ((q["name"], q["depth"], age(q["oldest_age_seconds"])) for q in body["queues"]),
    )


def workers(as_json: JsonOption = False) -> None:
    """Celery workers (and, in Kubernetes, the worker pods of each pool)."""
    with api_client() as client:
        body = client.get("/api/workers")
    if as_json:
        print_json(body)
        return
    table(
        None,
        ("pool", "worker", "queues", "busy", "last heartbeat", "state"),
        (
            (
                w["pool"],
                w["hostname"],
                ",".join(w["queues"]),
                f"{w['active']}/{w['concurrency']}",
                f"{age(w['heartbeat_age_seconds'])} ago",
                "[green]up[/green]" if w["up"] else "[red]down[/red]",
            )
            for w in body["workers"]
        ),
    )
    if not body["workers"]:
        err.print("no worker has sent a heartbeat recently")
    if body.get("pods") is not None:
        table(
            "pods",
            ("pool", "pod", "ready", "restarts", "age"),
            (
                (
                    pool["pool"],
                    p["name"],
                    "yes" if p["ready"] else "no",
                    p["restarts"],
                    age(p["age_seconds"]),
                )
                for pool in body["pods"]
                for p in pool["pods"]
            ),
        )
    if body.get("pods_error"):
        err.print(f"pods: {escape(body['pods_error'])}")


def schedules(as_json: JsonOption = False) -> None:
    """Each beat entry: when it runs, its last run and job, its next run."""
    with api_client() as client:
        body = client.get("/api/schedules")
    if as_json:
        print_json(body)
        return
    table(
        None,
        ("entry", "when (UTC)", "last run", "last job", "next run"),
        (
            (
                s["name"],
                s["cron"] or f"every {age(s['interval_seconds'])}",
                local_time(s["last_run_at"]),
                f"{s['last_job_id']} {status_text(s['last_job_status'])}"
                if s["last_job_status"]
                else "-",
                local_time(s["next_run_at"]),
            )
            for s in body["schedules"]
        ),
    )


def dead_letters(
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Jobs that failed for good; re-run one with `gristmill jobs retry JOB`."""
    with api_client() as client:
        page = client.get("/api/dead-letters", limit=limit, cursor=cursor)
    if as_json:
        print_json(page)
        return
    table(
        f"{len(page['items'])} dead letters",
        ("job", "type", "account", "attempts", "failed", "error"),
        (
            (
                d["job_id"],
                d["job_type"],
                d["account_key"],
                d["attempts"],
                local_time(d["created_at"]),
                escape(d["error_message"][:80]),
            )
            for d in page["items"]
        ),
    )
    if page["next_cursor"]:
        err.print(f"more: --cursor {page['next_cursor']}")
