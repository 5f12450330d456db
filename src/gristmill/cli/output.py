"""Printing for the CLI: JSON for scripts (stdout), rich tables for people, messages on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()
# Messages are not wrapped: a script or a test reads them whole.
err = Console(stderr=True, soft_wrap=True)

STATUS_STYLE = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def local_time(value: str | float | None) -> str:
    """An api timestamp (ISO 8601 UTC or unix seconds) in this machine's time zone."""
    if value is None or value == "":
        return "-"
    moment = (
        datetime.fromtimestamp(value).astimezone()
        if isinstance(value, int | float)
        else datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone()
    )
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def status_text(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("-" if cell is None else str(cell) for cell in row))
    out.print(grid)
