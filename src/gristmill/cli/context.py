"""What every api command shares: where the api is, the token, and the --json option."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from gristmill.cli.client import ApiClient
from gristmill.settings import get_settings

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@dataclass
class _Target:
    url: str | None = None


target = _Target()


def api_client() -> ApiClient:
    """A client for GRISTMILL_URL (or --url) with GRISTMILL_TOKEN."""
    settings = get_settings()
    token = settings.gristmill_token.get_secret_value() if settings.gristmill_token else None
    return ApiClient(target.url or settings.gristmill_url, token)
