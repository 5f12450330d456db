"""rbac.create: only the api may read pods (for the console's worker-pod view), nothing more."""

from __future__ import annotations

from .helpers import (
    EVERYTHING_ON,
    by_kind,
    containers,
    env_value,
    get,
    pod_spec,
    render_chart,
    workloads,
)


def _component(doc):
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def test_off_by_default_no_role_and_no_token(default_docs):
    assert by_kind(default_docs, "Role") == []
    assert by_kind(default_docs, "RoleBinding") == []
    api = get(default_docs, "Deployment", "api")
    assert pod_spec(api)["automountServiceAccountToken"] is False


def test_the_api_alone_gets_a_read_only_pod_role():
    docs = render_chart({**EVERYTHING_ON, "rbac": {"create": True}})
    (role,) = by_kind(docs, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (subject,) = binding["subjects"]
    accounts = {a["metadata"]["name"]: a for a in by_kind(docs, "ServiceAccount")}
    assert subject["kind"] == "ServiceAccount"
    assert subject["name"] in accounts
    assert accounts[subject["name"]]["automountServiceAccountToken"] is False
    for doc in workloads(docs):
        spec = pod_spec(doc)
        if doc["kind"] == "Deployment" and _component(doc) == "api":
            assert spec["serviceAccountName"] == subject["name"]
            assert spec["automountServiceAccountToken"] is True
            selector = env_value(containers(doc)["api"], "WORKER_POD_SELECTOR")
            assert selector == (
                "app.kubernetes.io/component=worker,app.kubernetes.io/instance=gristmill"
            )
        else:
            # Workers, scheduler, flower, migrations and the data stores stay token-less.
            assert spec["automountServiceAccountToken"] is False, doc["metadata"]["name"]
            assert spec.get("serviceAccountName") != subject["name"]


def test_worker_pods_carry_the_labels_the_selector_and_pool_use():
    docs = render_chart()
    for doc in by_kind(docs, "Deployment"):
        if _component(doc) != "worker":
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "worker"
        assert labels["app.kubernetes.io/instance"] == "gristmill"
        assert labels["gristmill.io/worker-pool"] in {"high", "default", "low"}
