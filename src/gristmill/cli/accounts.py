"""`gristmill accounts add|list|import`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from gristmill.cli.client import CliError
from gristmill.cli.context import JsonOption, api_client
from gristmill.cli.output import err, local_time, print_json, table

app = typer.Typer(help="The account registry.", no_args_is_help=True)

FIELDS = ("key", "platform", "handle", "base_url")


@app.command("add")
def add(
    key: Annotated[str, typer.Argument(help="Unique slug: a-z, 0-9, '-' and '_'.")],
    platform: Annotated[str, typer.Argument(help="mastodon or bluesky.")],
    handle: Annotated[str, typer.Argument(help="user@instance (Mastodon) or name.bsky.social.")],
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Overrides the platform's API root.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Register one account."""
    body: dict[str, Any] = {"key": key, "platform": platform, "handle": handle}
    if base_url:
        body["base_url"] = base_url
    with api_client() as client:
        account = client.post("/api/accounts", body)
    if as_json:
        print_json(account)
    else:
        err.print(f"added account [bold]{account['key']}[/bold] ({account['platform']})")


@app.command("list")
def list_accounts(
    platform: Annotated[str | None, typer.Option(help="Only this platform.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every registered account."""
    with api_client() as client:
        accounts = client.get("/api/accounts", platform=platform)
    if as_json:
        print_json(accounts)
        return
    table(
        f"{len(accounts)} accounts",
        ("key", "platform", "handle", "active", "added"),
        (
            (
                a["key"],
                a["platform"],
                a["handle"],
                "yes" if a["active"] else "no",
                local_time(a["created_at"]),
            )
            for a in accounts
        ),
    )


def read_accounts_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (with a header line) or YAML file (a list, or {"accounts": [...]})."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"{path} is not valid YAML: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("accounts")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise CliError(f"{path}: expected a list of accounts (key, platform, handle)")
        return [{k: v for k, v in row.items() if v is not None} for row in data]
    if path.suffix.lower() != ".csv":
        raise CliError(f"{path}: use a .csv or .yaml file")
    reader = csv.DictReader(text.splitlines())
    missing = [f for f in FIELDS[:3] if f not in (reader.fieldnames or [])]
    if missing:
        raise CliError(f"{path}: the header line must name {', '.join(missing)}")
    return [{k: v for k, v in row.items() if k and v not in (None, "")} for row in reader]


@app.command("import")
def import_accounts(
    file: Annotated[Path, typer.Argument(help="A .csv (key,platform,handle[,base_url]) or .yaml.")],
    as_json: JsonOption = False,
) -> None:
    """Register many accounts at once; every failure is reported, the rest still go in."""
    rows = read_accounts_file(file)
    outcomes: list[dict[str, Any]] = []
    with api_client() as client:
        for number, row in enumerate(rows, start=1):
            unknown = sorted(set(row) - set(FIELDS))
            body = {k: str(v) for k, v in row.items() if k in FIELDS}
            label = body.get("key") or f"row {number}"
            try:
                if unknown:
                    raise CliError(f"unknown field(s): {', '.join(unknown)}")
                client.post("/api/accounts", body)
            except CliError as exc:
                if "cannot reach" in str(exc) or "token" in str(exc):
                    raise  # nothing else will go in either
                outcomes.append({"row": number, "key": label, "ok": False, "error": str(exc)})
                if not as_json:
                    err.print(f"[red]failed[/red] {label} (row {number}): {exc}")
                continue
            outcomes.append({"row": number, "key": label, "ok": True, "error": None})
            if not as_json:
                err.print(f"[green]added[/green]  {label}")
    failed = sum(1 for o in outcomes if not o["ok"])
    if as_json:
        print_json(outcomes)
    else:
        err.print(f"{len(outcomes) - failed} added, {failed} failed")
    if failed:
        raise typer.Exit(code=1)
