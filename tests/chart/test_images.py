"""Dockerfiles and the chart run exactly the Procfile commands, as non-root, under tini."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from .helpers import REPO_ROOT, containers, get

COMPONENTS = ("api", "worker", "scheduler")
PROCFILE = dict(
    line.split(": ", 1)
    for line in (REPO_ROOT / "Procfile").read_text().splitlines()
    if line.strip()
)
IMAGE_COMMAND = {"api": "api", "worker": "worker_default", "scheduler": "scheduler"}


def _stages(component):
    text = (REPO_ROOT / "services" / component / "Dockerfile").read_text()
    # join continuation lines, drop comments
    text = re.sub(r"\\\n\s*", " ", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in lines:
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
            stages[current] = []
        stages[current].append(line)
    return stages


@pytest.mark.parametrize("component", COMPONENTS)
def test_dockerfile_is_multi_stage_on_a_pinned_slim_base(component):
    stages = _stages(component)
    assert set(stages) == {"", "builder", "runtime"}
    (arg,) = [ln for ln in stages[""] if ln.startswith("ARG PYTHON_IMAGE=")]
    assert re.fullmatch(
        r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", arg
    )
    assert any("pip install --no-deps ." in ln for ln in stages["builder"])
    runtime = " ".join(stages["runtime"])
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    for compiler in ("gcc", "build-essential", "g++", "python3-dev"):
        assert compiler not in runtime


@pytest.mark.parametrize("component", COMPONENTS)
def test_runtime_is_non_root_read_only_friendly_and_tini_pid1(component):
    runtime = _stages(component)["runtime"]
    assert "USER 10001:10001" in runtime
    env = " ".join(ln for ln in runtime if ln.startswith("ENV "))
    assert "HOME=/tmp" in env
    assert "TMPDIR=/tmp" in env
    (entrypoint,) = [ln for ln in runtime if ln.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["/usr/bin/tini", "--"]
    assert any("apt-get install --yes --no-install-recommends tini" in ln for ln in runtime)


@pytest.mark.parametrize("component", COMPONENTS)
def test_cmd_is_the_procfile_command(component):
    runtime = _stages(component)["runtime"]
    (cmd,) = [ln for ln in runtime if ln.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == [
        "sh",
        "-c",
        f"exec {PROCFILE[IMAGE_COMMAND[component]]}",
    ]


def test_worker_image_keeps_metrics_under_tmp():
    env = " ".join(ln for ln in _stages("worker")["runtime"] if ln.startswith("ENV "))
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/" in env


def test_dockerignore_is_an_allow_list():
    lines = [
        ln.strip()
        for ln in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/", "!services/"} <= set(lines)


def _kubelet_form(procfile_command: str) -> list[str]:
    """Procfile `${VAR:-default}` is the chart's `$(VAR)` (set in env by the chart)."""
    return [re.sub(r"\$\{(\w+):-[^}]*\}", r"$(\1)", tok) for tok in shlex.split(procfile_command)]


@pytest.mark.parametrize(
    ("deployment", "container", "process"),
    [
        ("api", "api", "api"),
        ("worker-high", "worker", "worker_high"),
        ("worker-default", "worker", "worker_default"),
        ("worker-low", "worker", "worker_low"),
        ("scheduler", "scheduler", "scheduler"),
    ],
)
def test_chart_commands_are_the_procfile_commands(default_docs, deployment, container, process):
    args = containers(get(default_docs, "Deployment", deployment))[container]["args"]
    assert args == _kubelet_form(PROCFILE[process])
