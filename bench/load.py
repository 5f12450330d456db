"""HTTP load with wrk: N connections POSTing to unique paths, latency percentiles read back."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Every request creates a new job: thread t's n-th request starts a job for account
# "<prefix>t<t>-<n>" (those accounts exist), so none is a duplicate of another.
_SCRIPT = """
local thread_counter = 0
function setup(thread)
  thread:set("tid", thread_counter)
  thread_counter = thread_counter + 1
end
function init(args)
  n = 0
end
request = function()
  n = n + 1
  local path = string.format("%s%st%d-%d", PATH_PREFIX, KEY_PREFIX, tid, n)
  return wrk.format("POST", path, {["Authorization"] = "Bearer TOKEN"}, "")
end
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.requests_per_second:,.0f} req/s, p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms ({self.requests:,} requests, {self.errors} errors)"
        )


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("make bench needs wrk: apt-get install -y wrk")
    return path


def keys_for(prefix: str, threads: int, per_thread: int) -> list[str]:
    return [f"{prefix}t{t}-{n}" for t in range(threads) for n in range(1, per_thread + 1)]


def run_wrk(
    base_url: str,
    path_prefix: str,
    key_prefix: str,
    *,
    token: str,
    connections: int,
    threads: int,
    seconds: int,
) -> LoadResult:
    script = (
        _SCRIPT.replace("PATH_PREFIX", repr(path_prefix))
        .replace("KEY_PREFIX", repr(key_prefix))
        .replace("TOKEN", token)
    )
    with tempfile.TemporaryDirectory() as directory:
        script_path = Path(directory) / "post.lua"
        script_path.write_text(script)
        output = subprocess.run(
            [
                require_wrk(),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script_path),
                base_url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> LoadResult:
    def latency(percentile: str) -> float:
        found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
        if found is None:
            raise ValueError(f"no {percentile}% latency in wrk output:\n{output}")
        return float(found.group(1)) * _UNITS[found.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if rate is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(value) for value in socket_errors.groups())
    return LoadResult(
        float(rate.group(1)), latency("50"), latency("99"), int(total.group(1)), failed
    )
