"""Generic properties of every values set: renders, validates, lints, schema is strict."""

from __future__ import annotations

import json

import pytest
import yaml

from .helpers import (
    CHART_DIR,
    KUBE_VERSIONS,
    HelmError,
    ValidationError,
    render_chart,
    run_helm,
    validate_object,
)


def test_every_value_set_renders_and_validates(value_set):
    name, values = value_set
    docs = render_chart(values)  # validates each object for KUBE_VERSIONS
    assert docs, name
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), f"duplicate objects in {name}"


def test_every_value_set_passes_helm_lint_strict(value_set):
    _, values = value_set
    out = run_helm(["lint", "--strict", str(CHART_DIR)], values)
    assert "0 chart(s) failed" in out


def test_rendering_is_deterministic():
    first = run_helm(["template", "gristmill", str(CHART_DIR)])
    second = run_helm(["template", "gristmill", str(CHART_DIR)])
    assert first == second


@pytest.mark.parametrize(
    "values",
    [
        {"bogus": 1},
        {"api": {"bogus": 1}},
        {"image": {"bogus": "x"}},
        {"config": {"NOT_A_SETTING": "1"}},
        {"metrics": {"serviceMonitor": {"bogus": True}}},
        {"workers": [{"name": "high", "queues": ["high"], "concurrency": 1, "bogus": 1}]},
    ],
    ids=["top", "api", "image", "config", "metrics", "worker-pool"],
)
def test_schema_rejects_unknown_keys(values):
    with pytest.raises(HelmError, match="additional properties"):
        render_chart(values)


def test_schema_rejects_running_as_root():
    with pytest.raises(HelmError, match="runAsNonRoot"):
        render_chart({"securityContext": {"runAsNonRoot": False}})


def test_external_services_without_urls_fail_clearly():
    with pytest.raises(HelmError, match=r"secrets\.databaseUrl is required"):
        render_chart({"postgresql": {"enabled": False}})
    with pytest.raises(HelmError, match=r"secrets\.redisUrl is required"):
        render_chart({"redis": {"enabled": False}})


def test_validator_catches_unknown_fields():
    """The strict Kubernetes schema is really applied (a typo in a pod spec fails)."""
    deployment = render_chart(show_only=["templates/api/deployment.yaml"])[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(ValidationError):
        validate_object(json.loads(json.dumps(deployment)))


def test_supported_versions_are_in_kubernetes_validate():
    import kubernetes_validate.utils as kv

    available = {kv.major_minor(v) for v in kv.all_versions()}
    assert set(KUBE_VERSIONS) <= available


def _leaf_paths(node, prefix=""):
    opaque = {"resources", "podSecurityContext", "labels", "annotations", "hosts", "tls"}
    if isinstance(node, dict) and node and prefix.rsplit(".", 1)[-1] not in opaque:
        for key, value in node.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_readme_documents_every_value():
    readme = (CHART_DIR / "README.md").read_text()
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    pools = values.pop("workers")
    missing = []
    for path in _leaf_paths(values):
        parents = [path.rsplit(".", n)[0] + ".*" for n in range(1, path.count(".") + 1)]
        if not any(f"`{candidate}`" in readme for candidate in [path, *parents]):
            missing.append(path)
    for path in {p for pool in pools for p in _leaf_paths(pool)}:
        if f"`workers[].{path}`" not in readme:
            missing.append(f"workers[].{path}")
    assert not missing, f"undocumented values in charts/gristmill/README.md: {missing}"
