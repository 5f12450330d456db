"""The Procfile: the exact commands `make run`, the images and the chart run."""

from __future__ import annotations

import re

from gristmill.settings import Settings
from tests.support.stack import read_procfile

PROCFILE = read_procfile()
WORKER_POOLS = ("worker_high", "worker_default", "worker_low")


def _default_metrics_port(command: str) -> int:
    match = re.match(r"env WORKER_METRICS_PORT=\$\{WORKER_METRICS_PORT:-(\d+)\} celery ", command)
    assert match, f"no per-pool WORKER_METRICS_PORT default: {command}"
    return int(match.group(1))


def test_every_local_metrics_endpoint_has_its_own_port() -> None:
    # `make run` starts every pool on one host: a shared port would leave two pools without
    # metrics ("Address already in use"). An explicit WORKER_METRICS_PORT still wins.
    ports = [_default_metrics_port(PROCFILE[pool]) for pool in WORKER_POOLS]
    scheduler_port = Settings.model_fields["scheduler_metrics_port"].default
    assert len({*ports, scheduler_port}) == 4
    # The first pool keeps the documented default, the one a Kubernetes pod uses.
    assert ports[0] == Settings.model_fields["worker_metrics_port"].default


def test_the_scheduler_takes_its_files_from_settings() -> None:
    assert "--schedule" not in PROCFILE["scheduler"]
    assert PROCFILE["scheduler"].startswith("celery -A services.scheduler.app beat")
