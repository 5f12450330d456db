"""Every container of every workload, in every values set, runs hardened."""

from __future__ import annotations

from .helpers import (
    EVERYTHING_ON,
    by_kind,
    containers,
    get,
    pod_spec,
    render_chart,
    workloads,
)

GRISTMILL_COMPONENTS = {"api", "worker", "scheduler", "migrations", "flower"}


def _component(doc):
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def test_every_container_is_hardened(value_set):
    name, values = value_set
    docs = render_chart(values)
    checked = 0
    for doc in workloads(docs):
        spec = pod_spec(doc)
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, where
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for cname, container in containers(doc).items():
            sc = container["securityContext"]
            at = f"{where} container {cname}"
            assert sc["runAsNonRoot"] is True, at
            assert sc["readOnlyRootFilesystem"] is True, at
            assert sc["allowPrivilegeEscalation"] is False, at
            assert sc["capabilities"] == {"drop": ["ALL"]}, at
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, at
            assert isinstance(sc["runAsUser"], int), at
            assert sc["runAsUser"] > 0, at
            if _component(doc) in GRISTMILL_COMPONENTS:
                assert sc["runAsUser"] == 10001, at
                assert pod_sc["runAsUser"] == 10001, at
            checked += 1
    assert checked >= 6


def test_writable_tmp_is_an_emptydir_in_every_gristmill_pod():
    docs = render_chart(EVERYTHING_ON)
    for doc in workloads(docs):
        if _component(doc) not in GRISTMILL_COMPONENTS:
            continue
        volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
        assert "emptyDir" in volumes["tmp"], doc["metadata"]["name"]
        for container in containers(doc).values():
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert env.get("HOME") == "/tmp", container["name"]


def test_service_account_does_not_mount_a_token(default_docs):
    (account,) = by_kind(default_docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for doc in workloads(default_docs):
        if _component(doc) in GRISTMILL_COMPONENTS:
            assert pod_spec(doc)["serviceAccountName"] == account["metadata"]["name"]


def test_network_policies_only_let_app_pods_reach_the_data_stores():
    docs = render_chart(EVERYTHING_ON)
    postgres = get(docs, "NetworkPolicy", "postgresql")
    (rule,) = postgres["spec"]["ingress"]
    (peer,) = rule["from"]
    expressions = {e["key"]: e["values"] for e in peer["podSelector"]["matchExpressions"]}
    assert expressions["app.kubernetes.io/instance"] == ["gristmill"]
    assert set(expressions["app.kubernetes.io/component"]) == {
        "api",
        "worker",
        "scheduler",
        "migrations",
    }
    assert rule["ports"] == [{"port": "postgresql", "protocol": "TCP"}]

    redis = get(docs, "NetworkPolicy", "redis")
    (rule,) = redis["spec"]["ingress"]
    components = {
        e["key"]: e["values"] for e in rule["from"][0]["podSelector"]["matchExpressions"]
    }["app.kubernetes.io/component"]
    assert set(components) == {"api", "worker", "scheduler", "migrations", "flower"}

    api = get(docs, "NetworkPolicy", "api")
    assert api["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]

    for component in ("worker", "scheduler"):
        policy = get(docs, "NetworkPolicy", component)
        assert policy["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]

    closed = get(docs, "NetworkPolicy", "no-ingress")
    assert "ingress" not in closed["spec"]
    assert closed["spec"]["policyTypes"] == ["Ingress"]
    (expression,) = [
        e
        for e in closed["spec"]["podSelector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    ]
    assert expression["values"] == ["migrations"]


def test_network_policy_targets_match_pods():
    docs = render_chart(EVERYTHING_ON)
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in workloads(docs)]
    for policy in by_kind(docs, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        match = selector.get("matchLabels", {})
        exprs = selector.get("matchExpressions", [])

        def selects(labels, match=match, exprs=exprs):
            return match.items() <= labels.items() and all(
                labels.get(e["key"]) in e["values"] for e in exprs
            )

        assert any(selects(labels) for labels in pod_labels), policy["metadata"]["name"]


def test_no_network_policies_by_default(default_docs):
    assert not by_kind(default_docs, "NetworkPolicy")
