"""Run the real Procfile processes (api, workers, scheduler) against the test services."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCFILE = REPO_ROOT / "Procfile"
# Started only by the tests that need them (start_all leaves them out): Flower is not part of
# the job path and would only load the shared cores.
OPTIONAL_PROCESSES = frozenset({"flower"})


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = command.strip()
    return processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], object], *, timeout: float, interval: float = 0.1, what: str = ""
) -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@dataclass
class Stack:
    """A set of Procfile processes sharing one environment; each can be killed and restarted."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=read_procfile)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    @property
    def api_token(self) -> str:
        return self.env["API_TOKENS"].split(",")[0]

    def start(self, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        env = {**self.env, **(extra_env or {})}
        # Metrics ports are fixed by default; tests that scrape them choose free ones.
        if name.startswith("worker"):
            env.setdefault("WORKER_METRICS_PORT", "0")
        if name == "scheduler":
            env.setdefault("SCHEDULER_METRICS_PORT", "0")
        log = (self.log_dir / f"{name}.log").open("ab")
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
        self.processes[name] = subprocess.Popen(
            ["bash", "-c", f"exec {self.commands[name]}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_all(self, names: list[str] | None = None) -> None:
        for name in names or [n for n in self.commands if n not in OPTIONAL_PROCESSES]:
            self.start(name)
        if "api" in self.processes:
            self.wait_for_api()

    def wait_for_api(self, timeout: float = 30) -> None:
        def ready() -> bool:
            process = self.processes["api"]
            if process.poll() is not None:
                raise AssertionError(f"api exited: {self.log('api')[-2000:]}")
            try:
                return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, what="the api to answer /healthz")

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group (a Celery main process and its pool)."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=60)

    def children(self, name: str) -> list[int]:
        """Pids of the process's children (a Celery main process's pool), from /proc."""
        pid = self.processes[name].pid
        try:
            listed = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(child) for child in listed.split()]

    def terminate(self, name: str, grace: float) -> float:
        """SIGTERM to the main process only, as Kubernetes stops a container; SIGKILL to the
        group after `grace` seconds. Returns the seconds it took to exit by itself (or
        `grace` plus the kill's time when it did not)."""
        process = self.processes.pop(name)
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
        return time.monotonic() - began

    def stop_all(self) -> None:
        for name in list(self.processes):
            process = self.processes[name]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name in list(self.processes):
            process = self.processes.pop(name)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
