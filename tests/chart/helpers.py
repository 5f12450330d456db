"""Render the gristmill chart with `helm template` and validate what comes out.

`render_chart(values, show_only)` is the entry point of every chart test: it writes `values` to
a file, runs helm (fetched by scripts/ensure_helm.sh when it is not installed), parses the YAML
documents and validates each object against the Kubernetes JSON schemas (strict: unknown fields
fail) for the oldest and newest Kubernetes versions the chart supports. Custom resources, which
those schemas do not know, get structural checks instead.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import ValidationError

__all__ = ["ValidationError", "render_chart", "validate_object"]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "gristmill"
RELEASE = "gristmill"
NAMESPACE = "gristmill-test"

# Oldest and newest Kubernetes minor versions the chart supports (Chart.yaml kubeVersion).
KUBE_VERSIONS = ("1.29", "1.35")

CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")

# Values that let every optional part of the chart render.
EVERYTHING_ON: dict[str, Any] = {
    "secrets": {"apiTokens": "write-token", "apiReadTokens": "read-token"},
    "api": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [
                {"host": "gristmill.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
            ],
            "tls": [{"secretName": "gristmill-tls", "hosts": ["gristmill.example.com"]}],
        },
        "autoscaling": {"enabled": True},
    },
    "flower": {"enabled": True, "basicAuth": "admin:flower-pass"},
    "networkPolicy": {"enabled": True},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboards": {"enabled": True},
    },
    "migrations": {"createDatabase": True},
    "image": {"pullSecrets": ["registry-cred"]},
}

# Production shape: managed PostgreSQL/Redis, credentials in a Secret made elsewhere.
EXTERNAL_EXISTING_SECRET: dict[str, Any] = {
    "postgresql": {"enabled": False},
    "redis": {"enabled": False},
    "secrets": {"existingSecret": "gristmill-prod"},
}


def _all_pools_autoscaled(trigger: str) -> dict[str, Any]:
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    pools = copy.deepcopy(defaults["workers"])
    for pool in pools:
        pool["autoscaling"]["enabled"] = True
    return {"workers": pools, "keda": {"trigger": trigger}}


KEDA_PROMETHEUS = _all_pools_autoscaled("prometheus")
KEDA_POSTGRESQL = _all_pools_autoscaled("postgresql")

# Values of `skaffold dev --profile dev`.
DEV_VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "ci" / "dev-values.yaml").read_text())

# The values sets every generic test (schema validation, lint, security) runs over.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything-on": EVERYTHING_ON,
    "external-existing-secret": EXTERNAL_EXISTING_SECRET,
    "keda-prometheus": KEDA_PROMETHEUS,
    "keda-postgresql": KEDA_POSTGRESQL,
    "no-hooks": {"migrations": {"useHelmHooks": False}},
    "skaffold-dev": DEV_VALUES,
    "k8s": yaml.safe_load((REPO_ROOT / "k8s" / "values.yaml").read_text()),
}


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


@functools.cache
def helm_binary() -> str:
    """Path of helm: $HELM, else whatever scripts/ensure_helm.sh finds or fetches."""
    env_helm = os.environ.get("HELM")
    if env_helm and os.access(env_helm, os.X_OK):
        return env_helm
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "ensure_helm.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise HelmError(f"scripts/ensure_helm.sh failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def run_helm(args: list[str], values: dict[str, Any] | None = None) -> str:
    """Run helm with `values` as a values file; return stdout or raise HelmError."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [helm_binary(), *args]
        if values:
            values_file = Path(tmp) / "values.yaml"
            values_file.write_text(yaml.safe_dump(values))
            cmd += ["--values", str(values_file)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise HelmError(result.stderr.strip() or result.stdout.strip())
    return result.stdout


@functools.cache
def _render_cached(
    values_json: str, show_only: tuple[str, ...], chart_dir: str, validate: bool
) -> str:
    values = json.loads(values_json)
    args = ["template", RELEASE, chart_dir, "--namespace", NAMESPACE]
    args += ["--kube-version", f"{KUBE_VERSIONS[-1]}.0"]
    for template in show_only:
        args += ["--show-only", template]
    out = run_helm(args, values)
    docs = [doc for doc in yaml.safe_load_all(out) if doc]
    if validate:
        for doc in docs:
            validate_object(doc)
    return json.dumps(docs)


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: Iterable[str] | None = None,
    *,
    chart_dir: Path | None = None,
    validate: bool = True,
) -> list[dict[str, Any]]:
    """Render the chart and return its objects (validated unless validate=False).

    show_only takes template paths relative to the chart, e.g. "templates/api/deployment.yaml".
    Results are cached per arguments; callers get a fresh deep copy each time.
    """
    key = json.dumps(values or {}, sort_keys=True)
    rendered = _render_cached(key, tuple(show_only or ()), str(chart_dir or CHART_DIR), validate)
    return json.loads(rendered)


# --- validation -----------------------------------------------------------------------------


@functools.cache
def _validated(doc_json: str, version: str) -> None:
    kubernetes_validate.validate(json.loads(doc_json), version, strict=True)


def validate_object(doc: dict[str, Any]) -> None:
    """Validate one object: Kubernetes schema (strict) or, for a CRD kind, its structure."""
    api_version = doc.get("apiVersion", "")
    assert doc.get("kind"), f"object without kind: {doc}"
    assert doc.get("metadata", {}).get("name"), f"object without name: {doc}"
    if api_version.startswith(CRD_GROUPS):
        _check_custom_resource(doc)
        return
    doc_json = json.dumps(doc, sort_keys=True)
    for version in KUBE_VERSIONS:
        _validated(doc_json, version)


def _check_custom_resource(doc: dict[str, Any]) -> None:
    kind, spec = doc["kind"], doc.get("spec")
    assert isinstance(spec, dict), f"{kind} without spec"
    if kind == "ScaledObject":
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert spec["scaleTargetRef"]["name"]
        assert isinstance(spec["minReplicaCount"], int)
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        assert spec["triggers"], "ScaledObject without triggers"
        for trigger in spec["triggers"]:
            assert trigger["type"] in {"prometheus", "postgresql"}
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), (
                "KEDA trigger metadata values must be strings"
            )
    elif kind == "TriggerAuthentication":
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        for ref in spec["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}
    elif kind == "ServiceMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]["matchLabels"]
        assert all(ep["port"] and ep["path"] for ep in spec["endpoints"])
    elif kind == "PodMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]["matchLabels"]
        assert all(ep["port"] for ep in spec["podMetricsEndpoints"])
    elif kind == "PrometheusRule":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        for group in spec["groups"]:
            assert group["name"]
            assert isinstance(group["rules"], list)
            for rule in group["rules"]:
                assert ("alert" in rule) != ("record" in rule), rule
                assert rule["expr"]
    else:
        raise AssertionError(f"unexpected custom resource kind {kind}")


# --- lookups --------------------------------------------------------------------------------


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def get(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of that kind and name (name without the release prefix is accepted)."""
    full = name if name.startswith(RELEASE) else f"{RELEASE}-{name}"
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == full]
    assert len(found) == 1, f"{kind}/{full} not rendered once: {names(docs)}"
    return found[0]


def names(docs: list[dict[str, Any]]) -> list[str]:
    return [f"{d['kind']}/{d['metadata']['name']}" for d in docs]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def containers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod_spec(doc)
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    kinds = {"Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob"}
    return (d for d in docs if d["kind"] in kinds)


def env_value(container: dict[str, Any], name: str) -> Any:
    for entry in container.get("env", []):
        if entry["name"] == name:
            return entry.get("value", entry.get("valueFrom"))
    raise KeyError(name)


def copy_chart(dest: Path) -> Path:
    """A copy of the chart (to add files/ fixtures without touching the real one)."""
    target = dest / "gristmill"
    shutil.copytree(CHART_DIR, target)
    return target
