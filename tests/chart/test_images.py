"""Images in the chart: the one Gristmill image everywhere, running the Procfile's commands, and
the in-chart Redis and PostgreSQL pinned by digest."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.support.stack import read_procfile

from .helpers import CHART_DIR, containers, get, render_chart, workloads

PROCFILE = read_procfile()
DEFAULT_VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
GRISTMILL_COMPONENTS = {"api", "worker", "scheduler", "migrations"}
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _gristmill_containers(docs):
    for doc in workloads(docs):
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] in GRISTMILL_COMPONENTS:
            yield from containers(doc).values()


def test_every_gristmill_container_runs_the_one_image(value_set):
    _, values = value_set
    docs = render_chart(values)
    images = {c["image"] for c in _gristmill_containers(docs)}
    assert images == {"gristmill:0.1.0"}


def test_a_digest_wins_over_the_tag_for_every_container():
    digest = "sha256:" + "a" * 64
    docs = render_chart(
        {
            "image": {"repository": "registry.example.com/gristmill", "tag": "x", "digest": digest},
            "migrations": {"createDatabase": True},
        }
    )
    found = list(_gristmill_containers(docs))
    # api, 3 pools, scheduler (each with wait-for-db), create-db and migrate
    assert len(found) == 12
    assert {c["image"] for c in found} == {f"registry.example.com/gristmill@{digest}"}


def test_a_tag_without_digest():
    docs = render_chart({"image": {"repository": "r.example.com/gristmill", "tag": "abc123"}})
    assert {c["image"] for c in _gristmill_containers(docs)} == {"r.example.com/gristmill:abc123"}


@pytest.mark.parametrize(
    ("component", "tag"), [("redis", "7.4.2"), ("postgresql", "16.6-bookworm")]
)
def test_in_chart_dependencies_are_pinned_by_digest(default_docs, component, tag):
    image = DEFAULT_VALUES[component]["image"]
    assert image["tag"] == tag
    assert DIGEST.match(image["digest"]), image
    (container,) = containers(get(default_docs, "StatefulSet", component)).values()
    assert container["image"] == f"{image['repository']}:{tag}@{image['digest']}"


def test_dependency_digest_can_be_overridden_or_dropped():
    mirror = "sha256:" + "b" * 64
    docs = render_chart(
        {
            "redis": {"image": {"repository": "mirror.example.com/r", "tag": "7", "digest": ""}},
            "postgresql": {"image": {"repository": "m/postgres", "tag": "16", "digest": mirror}},
        }
    )
    (redis,) = containers(get(docs, "StatefulSet", "redis")).values()
    assert redis["image"] == "mirror.example.com/r:7"
    (postgres,) = containers(get(docs, "StatefulSet", "postgresql")).values()
    assert postgres["image"] == f"m/postgres:16@{mirror}"


def _kubelet_form(procfile_command: str) -> list[str]:
    """The Procfile command as the chart's args: a leading `env VAR=value` (per-pool defaults for
    a shared host) is the container's env in the chart, and `${VAR:-default}` is `$(VAR)`."""
    tokens = shlex.split(procfile_command)
    if tokens[0] == "env":
        tokens = tokens[1:]
        while "=" in tokens[0]:
            tokens = tokens[1:]
    return [re.sub(r"\$\{(\w+):-[^}]*\}", r"$(\1)", token) for token in tokens]


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


def test_no_container_replaces_the_tini_entrypoint(default_docs):
    for container in _gristmill_containers(default_docs):
        assert "command" not in container, container["name"]
