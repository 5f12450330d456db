"""The Grafana dashboards: well-formed, every panel queries, every query parses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.support import (
    DASHBOARD_DIR,
    RULES_FILE,
    dashboard_queries,
    exported_series_names,
    run_promtool,
)

DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# A Gristmill or celery-exporter series name inside a PromQL expression.
_SERIES_NAME = re.compile(r"\b((?:celery|gristmill)_[a-z_]+)\b")


def _referenced_series(expr: str) -> set[str]:
    # The regex selector `celery_task_(succeeded|failed)_total` names two real series.
    expr = expr.replace(
        "celery_task_(succeeded|failed)_total",
        "celery_task_succeeded_total celery_task_failed_total",
    )
    return set(_SERIES_NAME.findall(expr))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_there_is_an_overview_dashboard() -> None:
    assert DASHBOARD_DIR / "gristmill-overview.json" in DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == DATASOURCE, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_parse(path: Path, tmp_path: Path) -> None:
    # promtool has no "check expression"; recording rules get every expression parsed.
    queries = dashboard_queries(_load(path))
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{index}", "expr": expr}
                    for index, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    rules_file = tmp_path / "dashboard-queries.yaml"
    rules_file.write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", rules_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_uses_only_exported_series(path: Path) -> None:
    exported = exported_series_names()
    for title, expr in dashboard_queries(_load(path)):
        unknown = _referenced_series(expr) - exported
        assert not unknown, f"panel {title!r} queries series nobody exports: {sorted(unknown)}"


def test_alert_rules_use_only_exported_series() -> None:
    exported = exported_series_names()
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            unknown = _referenced_series(rule["expr"]) - exported
            assert not unknown, f"{rule['alert']} uses series nobody exports: {sorted(unknown)}"
