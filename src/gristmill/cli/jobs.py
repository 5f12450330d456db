"""`gristmill jobs start|list|show|cancel|retry|delete`."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from gristmill.cli.client import ApiClient, CliError
from gristmill.cli.context import JsonOption, api_client
from gristmill.cli.output import err, local_time, out, print_json, status_text, table

app = typer.Typer(help="Start, watch and manage jobs.", no_args_is_help=True)

FINISHED = ("completed", "failed", "cancelled")
POLL_SECONDS = 1.0


class StartType(StrEnum):
    SCRAPE_ACCOUNT = "scrape-account"
    SCRAPE_ALL = "scrape-all"
    SCRAPE_PLATFORM = "scrape-platform"
    BACKFILL_ACCOUNT = "backfill-account"


def _start_request(job_type: StartType, args: list[str], days: int) -> tuple[str, Any]:
    needs_arg = {
        StartType.SCRAPE_ACCOUNT: "an account key",
        StartType.SCRAPE_PLATFORM: "a platform (mastodon or bluesky)",
        StartType.BACKFILL_ACCOUNT: "an account key",
    }
    if job_type in needs_arg and len(args) != 1:
        raise CliError(
            f"{job_type} takes {needs_arg[job_type]}: gristmill jobs start {job_type} ARG"
        )
    if job_type not in needs_arg and args:
        raise CliError(f"{job_type} takes no arguments")
    if job_type is StartType.BACKFILL_ACCOUNT:
        return f"/api/jobs/backfill-account/{args[0]}", {"days": days}
    if job_type is StartType.SCRAPE_ALL:
        return "/api/jobs/scrape-all", None
    return f"/api/jobs/{job_type}/{args[0]}", None


@app.command("start")
def start(
    job_type: Annotated[StartType, typer.Argument(metavar="TYPE", help="What to run.")],
    args: Annotated[list[str] | None, typer.Argument(help="Account key or platform.")] = None,
    days: Annotated[int, typer.Option(help="backfill-account: UTC dates ending today.")] = 30,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the job ends.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Start even if an identical job is already active.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a job; with --wait, follow it live and exit non-zero unless it completes."""
    path, body = _start_request(job_type, list(args or []), days)
    with api_client() as client:
        code, job = client.post_with_status(path, body, {"force": "true"} if force else None)
        if not as_json:
            if code == 200:
                err.print(
                    f"an identical {job['job_type']} job is already {job['status']}: "
                    f"[bold]{job['job_id']}[/bold] (--force starts another)"
                )
            else:
                err.print(f"started {job['job_type']} job [bold]{job['job_id']}[/bold]")
        if not wait:
            if as_json:
                print_json(job)
            return
        job = follow(client, job, show=not as_json)
    if as_json:
        print_json(job)
    else:
        _print_outcome(job)
    if job["status"] != "completed":
        raise typer.Exit(code=1)


def follow(client: ApiClient, job: dict[str, Any], *, show: bool) -> dict[str, Any]:
    """Follow a job on the api's event stream (polling if the stream is unavailable) until it
    ends, with a live progress bar on stderr; returns the finished job."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=False,
    )
    with progress:
        bar = progress.add_task(_describe(job), total=100, completed=job["progress"])

        def update(current: dict[str, Any]) -> None:
            progress.update(bar, completed=current["progress"], description=_describe(current))

        last_id: str | None = None
        while job["status"] not in FINISHED:
            try:
                job, last_id = _follow_stream(client, job, last_id, update)
            except CliError:
                # No stream (an older api, a proxy that buffers): poll the job instead.
                time.sleep(POLL_SECONDS)
                job = client.get(f"/api/jobs/{job['job_id']}")
                update(job)
        update(job)
    return job


def _follow_stream(
    client: ApiClient, job: dict[str, Any], last_id: str | None, update: Any
) -> tuple[dict[str, Any], str | None]:
    params = {"job_id": job["job_id"]} | ({"resume": last_id} if last_id else {})
    with client.events(**params) as source:
        for event in source.iter_sse():
            if not event.data:
                continue
            last_id = event.id or last_id
            message = json.loads(event.data)
            data = message.get("data") or {}
            if message["type"] == "snapshot" and data.get("jobs"):
                job = data["jobs"][0]
            elif message["type"] == "job" and data.get("job_id") == job["job_id"]:
                job = data.get("job") or job | {
                    "status": data["status"],
                    "progress": data["progress"],
                }
            else:
                continue
            update(job)
            if job["status"] in FINISHED:
                break
    return job, last_id


def _describe(job: dict[str, Any]) -> str:
    text = f"{job['job_type']} {status_text(job['status'])}"
    result = job.get("result") or {}
    if "accounts_total" in result:
        text += f" ({result.get('succeeded', 0)}/{result['accounts_total']} accounts)"
    return text


def _print_outcome(job: dict[str, Any]) -> None:
    message = f"job {job['job_id']} {status_text(job['status'])}"
    if job.get("error_message"):
        message += f": {escape(job['error_message'])}"
    err.print(message)


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="pending, running, completed, ...")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="e.g. scrape_account")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account's jobs.")] = None,
    parent: Annotated[str | None, typer.Option(help="Children of this fan-out job.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Jobs, newest first, one page at a time."""
    with api_client() as client:
        page = client.get(
            "/api/jobs",
            status=status,
            job_type=job_type,
            account_key=account,
            parent_job_id=parent,
            limit=limit,
            cursor=cursor,
        )
    if as_json:
        print_json(page)
        return
    table(
        None,
        ("job", "type", "status", "progress", "account", "created"),
        (
            (
                j["job_id"],
                j["job_type"],
                status_text(j["status"]),
                f"{j['progress']}%",
                j["account_key"],
                local_time(j["created_at"]),
            )
            for j in page["items"]
        ),
    )
    if page["next_cursor"]:
        err.print(f"more: --cursor {page['next_cursor']}")


@app.command("show")
def show(job_id: str, as_json: JsonOption = False) -> None:
    """One job: parameters, result, error, attempts, times."""
    with api_client() as client:
        job = client.get(f"/api/jobs/{job_id}")
    if as_json:
        print_json(job)
        return
    rows = [
        ("job", job["job_id"]),
        ("type", job["job_type"]),
        ("status", status_text(job["status"])),
        ("progress", f"{job['progress']}%"),
        ("account", job["account_key"] or "-"),
        ("queue", f"{job['queue']} (priority {job['priority']})"),
        ("attempts", str(job["attempts"])),
        ("created", local_time(job["created_at"])),
        ("started", local_time(job["started_at"])),
        ("finished", local_time(job["completed_at"])),
        ("params", json.dumps(job["params"])),
        ("result", json.dumps(job["result"]) if job["result"] is not None else "-"),
        ("error", escape(job["error_message"]) if job["error_message"] else "-"),
    ]
    if job.get("parent_job_id"):
        rows.append(("parent", job["parent_job_id"]))
    if job.get("retry_of_job_id"):
        rows.append(("re-run of", job["retry_of_job_id"]))
    for name, value in rows:
        out.print(f"[bold]{name:>9}[/bold]  {value}", highlight=False)


@app.command("cancel")
def cancel(job_id: str, as_json: JsonOption = False) -> None:
    """Cancel a pending or running job (a parent cancels its children)."""
    with api_client() as client:
        job = client.post(f"/api/jobs/{job_id}/cancel")
    if as_json:
        print_json(job)
    else:
        err.print(f"job {job['job_id']} {status_text(job['status'])}")


@app.command("retry")
def retry(job_id: str, as_json: JsonOption = False) -> None:
    """Run a dead-lettered job again, as a new job."""
    with api_client() as client:
        job = client.post(f"/api/jobs/{job_id}/retry")
    if as_json:
        print_json(job)
    else:
        err.print(f"re-running as job [bold]{job['job_id']}[/bold]")


@app.command("delete")
def delete(job_id: str, as_json: JsonOption = False) -> None:
    """Delete a finished job."""
    with api_client() as client:
        client.delete(f"/api/jobs/{job_id}")
    if as_json:
        print_json({"deleted": job_id})
    else:
        err.print(f"deleted job {job_id}")
