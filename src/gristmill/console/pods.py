"""Worker pods through the Kubernetes API (in-cluster only): ready, restarts, age, per pool.

The api's service account needs `list` on pods in its namespace (the chart's Role behind
`rbac.create`). Outside a cluster there is no lister and the console simply shows no pods.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_HOST_ENV_NAME,
    SERVICE_PORT_ENV_NAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)

from gristmill.clock import utc_now
from gristmill.settings import Settings

logger = logging.getLogger(__name__)

POOL_LABEL = "gristmill.io/worker-pool"
SERVICE_NAMESPACE_FILENAME = str(Path(SERVICE_TOKEN_FILENAME).parent / "namespace")
_REQUEST_TIMEOUT_SECONDS = 3.0
_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerPod:
    name: str
    pool: str | None
    phase: str
    ready: bool
    restarts: int
    age_seconds: float
    node: str | None


def _pod(item: Any, now: datetime) -> WorkerPod:
    status = item.status
    conditions = status.conditions or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    restarts = sum(int(c.restart_count or 0) for c in status.container_statuses or [])
    created = item.metadata.creation_timestamp
    return WorkerPod(
        name=item.metadata.name,
        pool=(item.metadata.labels or {}).get(POOL_LABEL),
        phase=status.phase or "Unknown",
        ready=ready,
        restarts=restarts,
        age_seconds=round((now - created).total_seconds(), 1) if created else 0.0,
        node=item.spec.node_name if item.spec else None,
    )


class PodLister:
    """Lists the worker pods, caching the answer a few seconds so every stream and page load
    costs at most one Kubernetes API call per api process per few seconds."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str, selector: str) -> None:
        self._api = k8s.CoreV1Api(api_client)
        self.namespace = namespace
        self.selector = selector
        self._lock = threading.Lock()
        self._cached: list[WorkerPod] | None = None
        self._cached_at = 0.0

    def list_pods(self) -> list[WorkerPod]:
        """The worker pods, by pool then name; raises when the Kubernetes API does not answer."""
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached_at < _CACHE_SECONDS:
                return self._cached
            answer = self._api.list_namespaced_pod(
                self.namespace,
                label_selector=self.selector,
                _request_timeout=_REQUEST_TIMEOUT_SECONDS,
            )
            now = utc_now()
            pods = sorted(
                (_pod(item, now) for item in answer.items or []),
                key=lambda pod: (pod.pool or "", pod.name),
            )
            self._cached, self._cached_at = pods, time.monotonic()
            return pods


def pod_lister_from_settings(
    settings: Settings,
    *,
    token_file: str = SERVICE_TOKEN_FILENAME,
    cert_file: str = SERVICE_CERT_FILENAME,
    namespace_file: str = SERVICE_NAMESPACE_FILENAME,
) -> PodLister | None:
    """A lister using the pod's service account, or None outside a cluster (no
    KUBERNETES_SERVICE_HOST, or no mounted service-account token)."""
    if not settings.kubernetes_service_host:
        return None
    environ = {
        SERVICE_HOST_ENV_NAME: settings.kubernetes_service_host,
        SERVICE_PORT_ENV_NAME: str(settings.kubernetes_service_port),
    }
    configuration = k8s.Configuration()
    try:
        # Refreshes the bound service-account token from the file as the kubelet rotates it.
        InClusterConfigLoader(token_file, cert_file, environ=environ).load_and_set(configuration)
    except ConfigException as exc:
        logger.warning("not listing worker pods: %s", exc)
        return None
    namespace = settings.kubernetes_namespace
    if not namespace:
        try:
            namespace = Path(namespace_file).read_text().strip()
        except OSError:
            logger.warning(
                "not listing worker pods: no KUBERNETES_NAMESPACE and no %s", namespace_file
            )
            return None
    return PodLister(k8s.ApiClient(configuration), namespace, settings.worker_pod_selector)
