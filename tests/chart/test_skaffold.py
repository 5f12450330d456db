"""skaffold.yaml: one image from the root Dockerfile; helm value paths exist in values.yaml."""

from __future__ import annotations

import yaml

from .helpers import CHART_DIR, DEV_VALUES, REPO_ROOT, get, render_chart

SKAFFOLD = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
DEFAULT_VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


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


def test_one_image_built_from_the_root_dockerfile():
    (artifact,) = SKAFFOLD["build"]["artifacts"]
    assert artifact["context"] == "."
    assert artifact["docker"]["dockerfile"] == "Dockerfile"
    assert (REPO_ROOT / "Dockerfile").is_file()
    # The chart's default repository is the skaffold image name, so plain `helm install` and
    # `kind load docker-image` agree with skaffold.
    assert DEFAULT_VALUES["image"]["repository"] == artifact["image"] == "gristmill"


def test_set_value_templates_point_at_the_built_image():
    templates = _release()["setValueTemplates"]
    assert templates == {
        "image.repository": "{{.IMAGE_REPO_gristmill}}",
        "image.tag": "{{.IMAGE_TAG_gristmill}}",
    }
    for path in templates:
        _lookup(DEFAULT_VALUES, path)


def test_deploy_renders_with_the_templated_values():
    docs = render_chart({"image": {"repository": "localhost:5000/gristmill", "tag": "abc1234"}})
    for name in ("api", "worker-high", "scheduler"):
        (container,) = get(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "localhost:5000/gristmill:abc1234"


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
