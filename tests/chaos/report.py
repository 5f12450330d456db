"""The table printed at the end of a chaos run.

`settle` keeps each scenario's figures in RESULTS; the chaos conftest moves them onto the
test's report (`user_properties`), which pytest-xdist carries from its workers to the main
process, where tests/conftest.py's terminal summary prints them with `print_table`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from tests.chaos.ledger import Figures, check_every_job, drain, stragglers
from tests.chaos.scale import current_scale
from tests.chaos.workload import Workload
from tests.support.faulty import FaultyStack

RESULTS: list[Figures] = []
PROPERTY = "chaos_figures"

_COLUMNS = (
    ("scenario", 24),
    ("jobs", 5),
    ("faults injected", 34),
    ("lost", 4),
    ("dup. completions", 16),
    ("double-counted days", 19),
    ("wrong snapshots", 15),
    ("failed", 6),
    ("dead letters", 12),
    ("drain s", 7),
)


def table(results: list[Figures]) -> list[str]:
    def line(values: list[str]) -> str:
        return " | ".join(
            value.ljust(width) if index in (0, 2) else value.rjust(width)
            for index, (value, (_, width)) in enumerate(zip(values, _COLUMNS, strict=True))
        )

    lines = [line([name for name, _ in _COLUMNS])]
    lines.append("-+-".join("-" * width for _, width in _COLUMNS))
    for figures in results:
        lines.append(
            line(
                [
                    figures.scenario,
                    str(figures.jobs),
                    figures.faults,
                    str(figures.lost),
                    str(figures.duplicated),
                    str(figures.double_counted_days),
                    str(figures.wrong_snapshots),
                    str(figures.failed),
                    str(figures.dead_letters),
                    f"{figures.drain_seconds:.1f}",
                ]
            )
        )
    return lines


def as_property(figures: Figures) -> tuple[str, dict[str, Any]]:
    return PROPERTY, asdict(figures)


def print_table(reporter: pytest.TerminalReporter) -> None:
    found: dict[str, Figures] = {}
    for reports in reporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == PROPERTY:
                    found[f"{report.nodeid} {value['scenario']}"] = Figures(**value)
    if found:
        reporter.section(f"chaos scenarios ({current_scale().name} scale)")
        for line in table(list(found.values())):
            reporter.write_line(line)


def settle(
    faulty: FaultyStack,
    scenario: str,
    faults: str,
    timeout: float,
    workload: Workload | None = None,
    started: list[str] | None = None,
) -> Figures:
    """Wait for every job to end, check every row, add the line to the table, and fail on
    anything lost, completed twice, miscounted or dead-lettered."""
    drain_seconds = drain(faulty, timeout)
    if faulty.revived:
        # Pools whose main process gave up (a child killed while starting), restarted.
        faults += f" +{faulty.revived} pool restarts"
    figures = check_every_job(faulty, scenario, faults, drain_seconds, workload, started)
    RESULTS.append(figures)
    assert figures.clean, (figures, faulty.statuses(), stragglers(faulty.database))
    return figures
