"""The Dockerfile as text: one image, a standard multi-stage build on a Python base ARG.

test_containers.py builds and runs it; these checks are cheap and run with every `make test`.
"""

from __future__ import annotations

import json
import re

from tests.support.stack import REPO_ROOT, read_procfile

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _instructions() -> list[str]:
    # Continuation lines joined, comments and blank lines dropped.
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in _instructions():
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
            stages[current] = []
        stages[current].append(line)
    return stages


def test_one_dockerfile_for_every_service() -> None:
    assert DOCKERFILE.is_file()
    assert not list((REPO_ROOT / "services").glob("*/Dockerfile"))


def test_multi_stage_on_a_python_base_argument() -> None:
    stages = _stages()
    assert list(stages) == ["", "base", "builder", "runtime"]
    (arg,) = stages[""]
    assert re.fullmatch(
        r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", arg
    )
    assert stages["base"][0] == "FROM ${PYTHON_IMAGE} AS base"
    assert stages["builder"][0] == "FROM base AS builder"
    assert stages["runtime"][0] == "FROM base AS runtime"


def test_builder_installs_dependencies_before_the_sources() -> None:
    builder = _stages()["builder"]
    copies = [ln for ln in builder if ln.startswith("COPY ")]
    assert copies == [
        "COPY pyproject.toml README.md ./",
        "COPY src ./src",
        "COPY services ./services",
    ]
    dependencies = next(i for i, ln in enumerate(builder) if "pip install /tmp/deps" in ln)
    project = next(i for i, ln in enumerate(builder) if "pip install --no-deps ." in ln)
    assert builder.index("COPY src ./src") < project
    assert dependencies < builder.index("COPY src ./src")
    # The optional CA bundle for pip is a build secret, never a layer.
    for index in (dependencies, project):
        assert "--mount=type=secret,id=pip-ca" in builder[index]


def test_runtime_is_the_venv_on_the_base_without_build_tools() -> None:
    runtime = " ".join(_stages()["runtime"])
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert "COPY src" not in runtime
    assert "COPY services" not in runtime
    for tool in ("gcc", "build-essential", "g++", "python3-dev"):
        assert tool not in runtime


def test_runtime_runs_as_10001_under_tini_with_everything_writable_in_tmp() -> None:
    runtime = _stages()["runtime"]
    assert "USER 10001:10001" in runtime
    env = " ".join(ln for ln in runtime if ln.startswith("ENV "))
    assert "HOME=/tmp" in env
    assert "TMPDIR=/tmp" in env
    (entrypoint,) = [ln for ln in runtime if ln.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["/usr/bin/tini", "--"]
    assert any("apt-get install --yes --no-install-recommends tini" in ln for ln in runtime)


def test_default_command_is_the_procfile_api() -> None:
    (cmd,) = [ln for ln in _stages()["runtime"] if ln.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == ["sh", "-c", f"exec {read_procfile()['api']}"]


def test_dockerignore_is_an_allow_list_without_tests() -> None:
    lines = [
        ln.strip()
        for ln in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {ln.removeprefix("!").rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "src", "services"}
