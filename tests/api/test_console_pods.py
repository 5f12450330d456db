"""/api/workers inside Kubernetes: worker pods read from a local server that answers like the
Kubernetes API (a pod list for the namespace and label selector asked for)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from kubernetes import client as k8s

from gristmill.clock import utc_now
from gristmill.console.pods import PodLister, pod_lister_from_settings
from gristmill.settings import Settings


def _pod(name: str, pool: str, *, ready: bool, restarts: int, age: timedelta) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "gristmill",
            "labels": {"app.kubernetes.io/component": "worker", "gristmill.io/worker-pool": pool},
            "creationTimestamp": (utc_now() - age).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "worker", "image": "w"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "worker",
                    "ready": ready,
                    "restartCount": restarts,
                    "image": "w",
                    "imageID": "",
                }
            ],
        },
    }


class FakeKubernetes:
    def __init__(self) -> None:
        self.pods: list[dict[str, Any]] = []
        self.status = 200
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append(
                    (url.path, parse_qs(url.query), self.headers.get("Authorization"))
                )
                if fake.status != 200:
                    body = {
                        "kind": "Status",
                        "status": "Failure",
                        "code": fake.status,
                        "reason": "Forbidden",
                        "message": "pods is forbidden",
                    }
                else:
                    body = {
                        "kind": "PodList",
                        "apiVersion": "v1",
                        "metadata": {},
                        "items": fake.pods,
                    }
                data = json.dumps(body).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def lister(self) -> PodLister:
        configuration = k8s.Configuration(host=self.url)
        # As the in-cluster loader sets it.
        configuration.api_key = {"BearerToken": "Bearer service-account-token"}
        return PodLister(
            k8s.ApiClient(configuration),
            "gristmill",
            "app.kubernetes.io/component=worker,app.kubernetes.io/instance=prod",
        )


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes()
    yield fake
    fake.server.shutdown()


def test_workers_list_the_worker_pods_of_each_pool(api: TestClient, kube: FakeKubernetes) -> None:
    kube.pods = [
        _pod("gristmill-worker-low-7d9-x1", "low", ready=True, restarts=0, age=timedelta(hours=3)),
        _pod("gristmill-worker-high-5f-a", "high", ready=True, restarts=2, age=timedelta(days=2)),
        _pod(
            "gristmill-worker-high-5f-b", "high", ready=False, restarts=7, age=timedelta(minutes=1)
        ),
    ]
    api.app.state.console.pod_lister = kube.lister()  # type: ignore[attr-defined]
    body = api.get("/api/workers").json()
    pools = {entry["pool"]: entry["pods"] for entry in body["pods"]}
    assert list(pools) == ["high", "low"]
    assert [p["name"] for p in pools["high"]] == [
        "gristmill-worker-high-5f-a",
        "gristmill-worker-high-5f-b",
    ]
    first, second = pools["high"]
    assert (first["ready"], first["restarts"], first["phase"]) == (True, 2, "Running")
    assert (second["ready"], second["restarts"]) == (False, 7)
    assert 2 * 86400 - 60 < first["age_seconds"] < 2 * 86400 + 60
    assert pools["low"][0]["node"] == "node-1"
    path, query, authorization = kube.requests[-1]
    assert path == "/api/v1/namespaces/gristmill/pods"
    assert query["labelSelector"] == [
        "app.kubernetes.io/component=worker,app.kubernetes.io/instance=prod"
    ]
    assert authorization == "Bearer service-account-token"
    assert body["pods_error"] is None


def test_a_refusing_kubernetes_api_is_reported_not_a_500(
    api: TestClient, kube: FakeKubernetes
) -> None:
    kube.status = 403
    api.app.state.console.pod_lister = kube.lister()  # type: ignore[attr-defined]
    response = api.get("/api/workers")
    assert response.status_code == 200
    body = response.json()
    assert body["pods"] == []
    assert "403" in body["pods_error"]
    assert "service-account-token" not in response.text


def test_outside_a_cluster_there_is_no_pod_lister(tmp_path: Path) -> None:
    assert pod_lister_from_settings(Settings(kubernetes_service_host=None)) is None
    # In a pod without a mounted service-account token (automount off, no rbac.create).
    settings = Settings(kubernetes_service_host="10.0.0.1", kubernetes_service_port=443)
    assert pod_lister_from_settings(settings, token_file=str(tmp_path / "token")) is None


def test_in_cluster_configuration_reads_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("mounted-token")
    (tmp_path / "ca.crt").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    )
    (tmp_path / "namespace").write_text("team-a\n")
    settings = Settings(
        kubernetes_service_host="10.96.0.1",
        kubernetes_service_port=6443,
        worker_pod_selector="app.kubernetes.io/component=worker,app.kubernetes.io/instance=x",
    )
    lister = pod_lister_from_settings(
        settings,
        token_file=str(tmp_path / "token"),
        cert_file=str(tmp_path / "ca.crt"),
        namespace_file=str(tmp_path / "namespace"),
    )
    assert lister is not None
    assert lister.namespace == "team-a"
    assert lister.selector == "app.kubernetes.io/component=worker,app.kubernetes.io/instance=x"
    configuration = lister._api.api_client.configuration
    assert configuration.host == "https://10.96.0.1:6443"
    assert configuration.ssl_ca_cert == str(tmp_path / "ca.crt")
    assert configuration.get_api_key_with_prefix("BearerToken").lower() == "bearer mounted-token"
    named = Settings(kubernetes_service_host="10.96.0.1", kubernetes_namespace="workers-ns")
    explicit = pod_lister_from_settings(
        named,
        token_file=str(tmp_path / "token"),
        cert_file=str(tmp_path / "ca.crt"),
        namespace_file=str(tmp_path / "missing"),
    )
    assert explicit is not None
    assert explicit.namespace == "workers-ns"
