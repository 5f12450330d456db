"""`gristmill`: operator commands.

Database set-up (create-db, migrate, wait-for-db) works on DATABASE_URL directly; everything
else talks to the api over REST (GRISTMILL_URL, GRISTMILL_TOKEN), so it works from a laptop
against any deployment.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from gristmill.cli import accounts, cluster, db, flower, jobs
from gristmill.cli.client import CliError
from gristmill.cli.context import target
from gristmill.cli.output import err

typer_app = typer.Typer(
    help="Gristmill operator commands.", no_args_is_help=True, pretty_exceptions_enable=False
)


@typer_app.callback()
def _options(
    url: Annotated[
        str | None,
        typer.Option("--url", help="The api's URL (default: GRISTMILL_URL).", show_default=False),
    ] = None,
) -> None:
    target.url = url


db.register(typer_app)
cluster.register(typer_app)
flower.register(typer_app)
typer_app.add_typer(accounts.app, name="accounts")
typer_app.add_typer(jobs.app, name="jobs")


def app() -> None:
    """The console script: a CliError becomes one line on stderr and exit code 1. Typer still
    handles usage errors (exit 2) and --help itself."""
    try:
        typer_app()
    except CliError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise SystemExit(exc.exit_code) from None
