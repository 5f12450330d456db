"""Fixtures of the chart tests. helm comes from scripts/ensure_helm.sh (fetched if missing)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import VALUE_SETS, helm_binary, render_chart


@pytest.fixture(scope="session", autouse=True)
def helm() -> str:
    """Make sure helm is there before the first render (CI machines start without it)."""
    return helm_binary()


@pytest.fixture(params=sorted(VALUE_SETS), scope="session")
def value_set(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(name, values) of each values set the generic tests cover."""
    return request.param, VALUE_SETS[request.param]


@pytest.fixture(scope="session")
def default_docs() -> list[dict[str, Any]]:
    return render_chart()
