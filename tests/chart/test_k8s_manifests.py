"""k8s/: the rendered plain manifests match the chart and make sense for `kubectl apply -k`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from .helpers import REPO_ROOT, by_kind, get, validate_object

K8S = REPO_ROOT / "k8s"
GENERATED = ("gristmill.yaml", "namespace.yaml", "kustomization.yaml")


@pytest.fixture(scope="module")
def manifests():
    return [d for d in yaml.safe_load_all((K8S / "gristmill.yaml").read_text()) if d]


def test_manifests_do_not_drift_from_the_chart(tmp_path, helm):
    subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "render_k8s.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
        env={**os.environ, "HELM": helm},
    )
    for name in GENERATED:
        fresh = (tmp_path / name).read_text()
        committed = (K8S / name).read_text()
        assert committed == fresh, f"k8s/{name} is stale: run `make k8s` (scripts/render_k8s.sh)"


def test_manifests_validate(manifests):
    for doc in manifests:
        validate_object(doc)


def test_manifests_carry_no_helm_hooks_and_only_placeholder_secrets(manifests):
    for doc in manifests:
        annotations = doc["metadata"].get("annotations", {})
        assert not any(key.startswith("helm.sh/hook") for key in annotations)
    (secret,) = by_kind(manifests, "Secret")
    data = secret["stringData"]
    assert "k8s-dev-placeholder-postgres-password" in data["DATABASE_URL"]
    assert "k8s-dev-placeholder-redis-password" in data["REDIS_URL"]
    assert data["API_TOKENS"] == "k8s-dev-placeholder-write-token"


def test_api_nodeport_matches_the_kind_port_mapping(manifests):
    kind = yaml.safe_load((K8S / "kind-cluster.yaml").read_text())
    mappings = kind["nodes"][0]["extraPortMappings"]
    node_port = get(manifests, "Service", "api")["spec"]["ports"][0]["nodePort"]
    assert {"containerPort": node_port, "hostPort": 8000} in [
        {"containerPort": m["containerPort"], "hostPort": m["hostPort"]} for m in mappings
    ]


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "gristmill"
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_it():
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True
    )
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert all(d["metadata"]["namespace"] == "gristmill" for d in namespaced)
