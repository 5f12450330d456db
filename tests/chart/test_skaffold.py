"""skaffold.yaml: images match the Dockerfiles, helm value paths exist in values.yaml."""

from __future__ import annotations

import re

import pytest
import yaml

from .helpers import CHART_DIR, DEV_VALUES, REPO_ROOT, get, render_chart

SKAFFOLD = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
DEFAULT_VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
COMPONENTS = ("api", "worker", "scheduler")


def _release():
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    return release


def _lookup(values, dotted):
    node = values
    for part in dotted.split("."):
        assert isinstance(node, dict), dotted
        assert part in node, f"{dotted}: no {part!r} in values.yaml"
        node = node[part]
    return node


def test_config_header():
    assert SKAFFOLD["apiVersion"] == "skaffold/v4beta11"
    assert SKAFFOLD["kind"] == "Config"


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_image_builds_from_its_service_dockerfile(component):
    artifacts = {a["image"]: a for a in SKAFFOLD["build"]["artifacts"]}
    artifact = artifacts[f"gristmill-{component}"]
    assert artifact["context"] == "."
    dockerfile = artifact["docker"]["dockerfile"]
    assert dockerfile == f"services/{component}/Dockerfile"
    assert (REPO_ROOT / dockerfile).is_file()
    # The chart's default repository is the skaffold image name, so plain `helm install` and
    # `kind load docker-image` agree with skaffold.
    assert DEFAULT_VALUES["image"][component]["repository"] == artifact["image"]


def test_set_value_templates_point_at_existing_values_and_built_images():
    templates = _release()["setValueTemplates"]
    artifact_names = {a["image"] for a in SKAFFOLD["build"]["artifacts"]}
    for path, template in templates.items():
        _lookup(DEFAULT_VALUES, path)
        (var,) = re.findall(r"\{\{\s*\.(IMAGE_(?:REPO|TAG)_\w+)\s*\}\}", template)
        image = re.sub(r"^IMAGE_(REPO|TAG)_", "", var).replace("_", "-")
        assert image in artifact_names, template
        component = path.split(".")[1]
        assert image == f"gristmill-{component}"
        assert path.endswith(".repository") == ("IMAGE_REPO_" in var)
    assert {p.split(".")[1] for p in templates} == set(COMPONENTS)


def test_deploy_renders_with_the_templated_values():
    values = {
        "image": {
            c: {"repository": f"localhost:5000/gristmill-{c}", "tag": "abc1234"} for c in COMPONENTS
        }
    }
    docs = render_chart(values)
    api = get(docs, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    assert api["image"] == "localhost:5000/gristmill-api:abc1234"


def test_port_forward_targets_the_api_service():
    (forward,) = SKAFFOLD["portForward"]
    release = _release()
    assert forward["resourceType"] == "service"
    assert forward["namespace"] == release["namespace"]
    assert forward["port"] == DEFAULT_VALUES["api"]["service"]["port"] == 8000
    # render with skaffold's release name to learn the Service name
    docs = render_chart()
    assert release["name"] == "gristmill"
    assert get(docs, "Service", forward["resourceName"])


def test_dev_profile_uses_in_chart_services_and_single_replicas():
    (profile,) = [p for p in SKAFFOLD["profiles"] if p["name"] == "dev"]
    (patch,) = profile["patches"]
    assert patch["path"] == "/deploy/helm/releases/0/valuesFiles"
    for path in patch["value"]:
        assert (REPO_ROOT / path).is_file(), path
    assert DEV_VALUES["postgresql"]["enabled"] is True
    assert DEV_VALUES["redis"]["enabled"] is True
    assert DEV_VALUES["config"]["LOG_LEVEL"] == "DEBUG"
    docs = render_chart(DEV_VALUES)
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            assert doc["spec"]["replicas"] == 1, doc["metadata"]["name"]
