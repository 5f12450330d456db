"""The alert rules parse and behave as their unit tests say (`promtool test rules`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.observability.support import RULES_FILE, run_promtool

RULES_TESTS = Path(__file__).with_name("rules_test.yaml")


def test_rules_file_is_valid() -> None:
    result = run_promtool("check", "rules", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULES_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_the_chart_shape() -> None:
    rules = yaml.safe_load(RULES_FILE.read_text())
    # The chart wraps exactly this top-level key into a PrometheusRule.
    assert list(rules) == ["groups"]
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert alerts <= tested, f"alerts without a promtool test: {sorted(alerts - tested)}"
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
