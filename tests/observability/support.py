"""Helpers for the metrics tests: reading samples, running promtool, a test worker process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from gristmill.db import Database
from gristmill.observability import publish, task_metrics
from gristmill.observability.cluster import ClusterCollector
from gristmill.observability.platforms import PlatformCollector
from gristmill.scrapers import guard
from tests.support.stack import REPO_ROOT, free_port, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

RULES_FILE = REPO_ROOT / "charts/gristmill/files/prometheus-rules.yaml"
DASHBOARD_DIR = REPO_ROOT / "charts/gristmill/files/dashboards"


def samples_of(families: Iterable[Metric]) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def parse_exposition(body: str) -> Samples:
    return samples_of(text_string_to_metric_families(body))


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The sample `metric{labels}` (positional-only, so `name=` can be a label)."""
    return samples.get((metric, frozenset(labels.items())))


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (sample_name, labels) in samples if sample_name == name]


def prometheus_tool(name: str) -> str:
    """A binary of Debian's `prometheus` package (promtool, prometheus); outside CI a missing
    one skips the test, in CI it fails it."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{name} is missing in CI: .ci/run must `apt-get install -y prometheus`")
    pytest.skip(f"{name} not installed (apt-get install -y prometheus); CI runs these tests")


def promtool() -> str:
    return prometheus_tool("promtool")


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@dataclass
class ObsWorker:
    """`celery -A tests.observability.worker_app worker` on a queue of its own, prefork pool."""

    env: dict[str, str]
    log_path: Path
    queue: str = field(default_factory=lambda: f"obs-{uuid.uuid4().hex[:8]}")
    concurrency: int = 2
    max_tasks_per_child: int = 1
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def nodename(self) -> str:
        # Celery expands %h to socket.gethostname().
        return f"{self.queue}@{socket.gethostname()}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        # free_port() only finds a port free *now*; under xdist another process may take it
        # before the worker binds it. The worker logs which happened; retry on a new port.
        for _ in range(3):
            self._spawn(extra_env)
            outcome = wait_until(self._bound, timeout=60, what="the worker to bind its port")
            if outcome == "bound":
                wait_until(self.metrics_answer, timeout=30, what=self.metrics_url)
                return
            self.stop()
            self.metrics_port = free_port()
        raise AssertionError(f"the test worker found no free metrics port: {self.log()[-3000:]}")

    def _bound(self) -> str | None:
        assert self.process is not None
        log = self.log()
        if f"worker metrics on http://0.0.0.0:{self.metrics_port}/" in log:
            return "bound"
        if f"cannot serve worker metrics on port {self.metrics_port}" in log:
            return "taken"
        if self.process.poll() is not None:
            raise AssertionError(f"test worker exited: {log[-3000:]}")
        return None

    def _spawn(self, extra_env: Mapping[str, str] | None) -> None:
        env = {**self.env, "WORKER_METRICS_PORT": str(self.metrics_port), **(extra_env or {})}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        command = [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "tests.observability.worker_app",
            "worker",
            "--queues",
            self.queue,
            "--hostname",
            f"{self.queue}@%h",
            "--concurrency",
            str(self.concurrency),
            "--pool",
            "prefork",
            # A fresh child per task: exercises child turnover and the folding of dead
            # children's metric files, which production hits whenever a child is replaced
            # (past WORKER_MAX_MEMORY_PER_CHILD_MB, crashed, killed at its hard time limit).
            "--max-tasks-per-child",
            str(self.max_tasks_per_child),
            "--loglevel",
            "INFO",
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def metrics_answer(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"test worker exited: {self.log()[-3000:]}")
        try:
            return httpx.get(self.metrics_url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def scrape(self) -> Samples:
        return parse_exposition(httpx.get(self.metrics_url, timeout=5).text)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            # The whole group: with SIGKILL the pool children must not outlive the test.
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# What Grafana substitutes before a query reaches Prometheus; "All" of a variable is ".*".
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$queue": ".*",
}


def as_promql(expr: str) -> str:
    for variable, replacement in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, replacement)
    return expr


def dashboard_queries(dashboard: Mapping[str, object]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, Grafana variables filled in."""
    queries: list[tuple[str, str]] = []
    panels = dashboard.get("panels", [])
    assert isinstance(panels, list)
    for panel in panels:
        for target in panel.get("targets", []):
            queries.append((str(panel["title"]), as_promql(str(target["expr"]))))
    return queries


def _no_database() -> Database:
    raise AssertionError("describing metrics must not read the database")


def exported_series_names() -> set[str]:
    """Every sample name Gristmill exports (docs/metrics.md), from the metric definitions."""
    cluster = ClusterCollector(_no_database, "redis://127.0.0.1:1/0")
    families = list(cluster.describe())
    cluster.close()
    platform_state = PlatformCollector("redis://127.0.0.1:1/0")
    families.extend(platform_state.describe())
    platform_state.close()
    metrics = [publish.TASKS_SENT] + [
        item
        for module in (task_metrics, guard)
        for item in vars(module).values()
        if isinstance(item, Counter | Histogram)
    ]
    for metric in metrics:
        families.extend(metric.describe())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))
    }


_open_mmap: Callable[[str], Any] = MmapedDict  # untyped in prometheus_client


def add_to_metrics_file(
    path: Path, metric: str, sample: str, labels: Mapping[str, str], amount: float
) -> None:
    """Add `amount` to one sample of a prometheus multiprocess file, as a process would."""
    data = _open_mmap(str(path))
    key: str = mmap_key(metric, sample, list(labels), list(labels.values()), "help")
    current, _ = data.read_value(key)
    data.write_value(key, current + amount, 0.0)
    data.close()
