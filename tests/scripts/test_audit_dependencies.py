"""`make audit` against a local stand-in for PyPI's JSON API (real HTTP, canned answers)."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_dependencies.py"

VULN = {
    "id": "PYSEC-2099-1",
    "aliases": ["CVE-2099-0001"],
    "fixed_in": ["99.0"],
    "summary": "made up",
    "withdrawn": None,
}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


audit = _load()


class FakeIndex:
    """Project pages say each package's installed version is the latest, without
    vulnerabilities, unless a test says otherwise; per-version pages are 404 unless given."""

    def __init__(self) -> None:
        self.latest: dict[str, str] = {}
        self.project_vulns: dict[str, list[dict[str, Any]]] = {}
        self.exact: dict[tuple[str, str], list[dict[str, Any]]] = {}
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                body: dict[str, Any] | None = None
                if len(parts) == 3 and (parts[0], parts[1]) in index.exact:
                    body = {"vulnerabilities": index.exact[(parts[0], parts[1])]}
                elif len(parts) == 2:
                    version = index.latest.get(parts[0]) or metadata.version(parts[0])
                    vulns = index.project_vulns.get(parts[0], [])
                    body = {"info": {"version": version}, "vulnerabilities": vulns}
                payload = json.dumps(body).encode()
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def index() -> Iterator[FakeIndex]:
    server = FakeIndex()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _run(index: FakeIndex, allow: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = audit.main(["--index", index.url, "--allow-unverified", str(allow)])
    return code, capsys.readouterr().out


def test_closure_is_the_pinned_dependencies_not_the_venv_tooling() -> None:
    found = audit.closure("gristmill", ("dev",))
    assert found["httpx"] == "0.28.1"
    assert found["dnspython"] == metadata.version("dnspython")
    assert "pytest" in found  # the dev extra
    assert "httpcore" in found  # transitive
    assert "gristmill" not in found
    assert "pip" not in found


def test_clean_latest_pins_pass(
    index: FakeIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(index, tmp_path / "none.txt", capsys)
    assert code == 0, out
    total = len(audit.closure("gristmill", ("dev",)))
    assert f"audit: {total} dependencies, 0 failing" in out


def test_a_vulnerable_pin_fails_with_its_ids_and_fix(
    index: FakeIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.project_vulns["httpx"] = [VULN, {**VULN, "id": "PYSEC-2099-2", "withdrawn": "x"}]
    index.exact[("redis", metadata.version("redis"))] = [VULN]
    code, out = _run(index, tmp_path / "none.txt", capsys)
    assert code == 1
    assert "VULNERABLE  httpx==0.28.1: PYSEC-2099-1, CVE-2099-0001 (fixed in 99.0)" in out
    assert "PYSEC-2099-2" not in out  # withdrawn
    assert f"VULNERABLE  redis=={metadata.version('redis')}" in out
    assert "2 failing" in out


def test_an_old_pin_without_per_version_data_fails_unless_accepted(
    index: FakeIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.latest["httpx"] = "99.0"
    allow = tmp_path / "allow.txt"
    code, out = _run(index, allow, capsys)
    assert code == 1
    assert "UNVERIFIED  httpx==0.28.1: no per-version data reachable (HTTP 404)" in out
    allow.write_text("# comment\nhttpx==0.28.1  # pinned by something\n")
    code, out = _run(index, allow, capsys)
    assert code == 0, out
    assert "accepted: pinned by something" in out
