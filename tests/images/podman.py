"""Run the chart's containers with podman: the same image, args, env and security settings.

`ChartPod` takes one rendered workload (a Deployment or the migration Job) and runs its init
containers to completion, then its main container, translating what the kubelet would do:
`securityContext` (user, read-only root filesystem, dropped capabilities, no privilege
escalation), every emptyDir volumeMount as a tmpfs of the same size, env from the rendered
ConfigMap/Secret (tests/chart/pods.py), `$(VAR)` in args, `terminationGracePeriodSeconds` as the
stop timeout, and the chart's probes (exec probes run inside the container with `podman exec`).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.chart.pods import command_line, resolve_env

# What this kind of machine needs (measured): runc (the only OCI runtime that works here),
# explicit rlimits (keeping the defaults is refused) and host networking (the containers reach
# the test PostgreSQL, Redis and fake platform on 127.0.0.1, and the tests reach them there).
PODMAN_RUN_FLAGS = (
    "--runtime",
    "runc",
    "--network",
    "host",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
)


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _tmpfs_size(size_limit: str | None) -> str:
    """Kubernetes quantity (256Mi, 1Gi) as a tmpfs size option (256m, 1g)."""
    if not size_limit:
        return ""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", size_limit)
    assert match, f"unsupported emptyDir sizeLimit {size_limit}"
    return f",size={match.group(1)}{match.group(2)[0].lower()}"


def security_flags(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """podman flags for the container's securityContext and its emptyDir mounts."""
    context = {**pod_spec.get("securityContext", {}), **container.get("securityContext", {})}
    flags = ["--user", f"{context['runAsUser']}:{context['runAsGroup']}"]
    if context.get("readOnlyRootFilesystem"):
        # Only what the chart mounts is writable: no extra tmpfs on /run or /var/tmp.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    for capability in context.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", capability]
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    assert context.get("privileged") is not True
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"only emptyDir volumes are mapped: {volume}"
        size = _tmpfs_size(volume["emptyDir"].get("sizeLimit"))
        # The kubelet creates emptyDir directories world-writable (0777).
        flags += ["--tmpfs", f"{mount['mountPath']}:rw,mode=0777{size}"]
    return flags


@dataclass
class Started:
    name: str
    container: dict[str, Any]
    env: dict[str, str]
    # time.monotonic() when the pod started (its init containers) and when its main container did
    pod_started_at: float
    started_at: float


@dataclass
class ChartPod:
    """One rendered workload run as podman containers."""

    doc: dict[str, Any]
    image: str
    docs: list[dict[str, Any]]
    overrides: Mapping[str, str]
    workdir: Path
    # containerPort in the chart -> the port the process really listens on (set via overrides).
    moved_ports: Mapping[int, int] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"gristmill-it-{uuid.uuid4().hex[:8]}")
    main: Started | None = None
    names: list[str] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.doc["spec"]["template"]["spec"]
        return spec

    @property
    def grace_seconds(self) -> int:
        return int(self.spec.get("terminationGracePeriodSeconds", 30))

    def env_for(self, container: Mapping[str, Any]) -> dict[str, str]:
        return {**resolve_env(self.docs, dict(container)), **self.overrides}

    def _run_args(self, name: str, container: Mapping[str, Any], env: dict[str, str]) -> list[str]:
        env_file = self.workdir / f"{name}.env"
        env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        env_file.chmod(0o600)
        args = [*PODMAN_RUN_FLAGS, "--name", name, "--env-file", str(env_file)]
        args += security_flags(self.spec, container)
        args += ["--stop-timeout", str(self.grace_seconds)]
        memory = container.get("resources", {}).get("limits", {}).get("memory")
        if memory:
            args += ["--memory", memory.replace("Mi", "m").replace("Gi", "g")]
        return [*args, self.image, *command_line(dict(container), env)]

    def run_init_containers(self) -> None:
        for init in self.spec.get("initContainers", []):
            self.run_to_completion(init)

    def run_to_completion(self, container: Mapping[str, Any]) -> None:
        name = f"{self.prefix}-{container['name']}"
        env = self.env_for(container)
        self.names.append(name)
        args = self._run_args(name, container, env)
        result = subprocess.run(
            ["podman", "run", *args], capture_output=True, text=True, timeout=180, check=False
        )
        assert result.returncode == 0, (
            f"{container['name']} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )

    def start(self) -> Started:
        """Init containers to completion, then the main container in the background."""
        pod_started_at = time.monotonic()
        self.run_init_containers()
        (container,) = self.spec["containers"]
        name = f"{self.prefix}-{container['name']}"
        env = self.env_for(container)
        self.names.append(name)
        started_at = time.monotonic()
        podman("run", "--detach", *self._run_args(name, container, env))
        self.main = Started(name, container, env, pod_started_at, started_at)
        return self.main

    def _main(self) -> Started:
        assert self.main is not None, "start() first"
        return self.main

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self._main().name)
        return state.strip() == "true"

    def logs(self, tail: int = 60) -> str:
        result = subprocess.run(
            ["podman", "logs", "--tail", str(tail), self._main().name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.stdout + result.stderr

    def exec_output(self, *argv: str) -> str:
        """stdout of a command run inside the main container (as its user)."""
        return podman("exec", self._main().name, *argv, timeout=30).strip()

    def probe(self, kind: str) -> bool:
        """Run the container's `kind` probe (livenessProbe, readinessProbe, startupProbe)."""
        main = self._main()
        probe = main.container[kind]
        if "exec" in probe:
            result = subprocess.run(
                ["podman", "exec", main.name, *probe["exec"]["command"]],
                capture_output=True,
                timeout=30,
                check=False,
            )
            return result.returncode == 0
        http = probe["httpGet"]
        (port,) = [
            p["containerPort"]
            for p in main.container["ports"]
            if http["port"] in (p["name"], p["containerPort"])
        ]
        # Host networking: a port the test moved (to a free one) is found where it went.
        port = self.moved_ports.get(port, port)
        try:
            return httpx.get(f"http://127.0.0.1:{port}{http['path']}", timeout=3).is_success
        except httpx.HTTPError:
            return False

    def stop(self) -> tuple[float, int]:
        """SIGTERM through tini, as the kubelet sends it; SIGKILL after the grace period.
        Returns (seconds until the container exited, its exit code)."""
        name = self._main().name
        started = time.monotonic()
        podman("stop", "--time", str(self.grace_seconds), name, timeout=self.grace_seconds + 60)
        elapsed = time.monotonic() - started
        code = int(podman("inspect", "--format", "{{.State.ExitCode}}", name).strip())
        return elapsed, code

    def remove(self) -> None:
        for name in self.names:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                podman("rm", "--force", "--time", "0", name, check=False)


def image_size_bytes(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).strip())


def run_in_image(image: str, argv: Sequence[str], *, entrypoint: str | None = None) -> str:
    flags = [*PODMAN_RUN_FLAGS, "--rm"]
    if entrypoint is not None:
        flags += ["--entrypoint", entrypoint]
    return podman("run", *flags, image, *argv)
