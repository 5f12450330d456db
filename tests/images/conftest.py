"""Fixtures of the image tests: the image built with podman on a locally made base, and figures.

The container tests build and run the real image, which takes minutes, so they run under
`make images-test` (GRISTMILL_IMAGES_TEST=1) and are skipped, with the reason, by `make test`
and wherever podman or mmdebstrap is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

import pytest

from tests.support.stack import REPO_ROOT

from .podman import image_size_bytes

BASE_IMAGE = "localhost/gristmill-python:3.11-bookworm"
IMAGE = "localhost/gristmill:images-test"
ENABLED_BY = "GRISTMILL_IMAGES_TEST"

# Figures printed at the end of the run (pytest_terminal_summary below).
FIGURES: dict[str, str] = {}


def skip_reason() -> str | None:
    if os.environ.get(ENABLED_BY) != "1":
        return "builds and runs the image: run `make images-test`"
    for tool in ("podman", "mmdebstrap", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install podman buildah mmdebstrap runc)"
    return None


def _script(name: str, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / name)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-6000:]}"
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def image() -> str:
    """The Gristmill image, built by scripts/build_image.sh with podman on a local Debian base
    (public registries are out of reach here; real builds start from python:3.11-slim)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], check=False).returncode == 0:
        FIGURES["local base image"] = f"{BASE_IMAGE} reused (made by an earlier run here)"
    else:
        started = time.monotonic()
        _script("build_local_base.sh", {}, timeout=900)
        FIGURES["local base image"] = f"made in {time.monotonic() - started:.0f} s (mmdebstrap)"
    started = time.monotonic()
    built = _script(
        "build_image.sh",
        {"CONTAINER_ENGINE": "podman", "PYTHON_IMAGE": BASE_IMAGE, "IMAGE": IMAGE},
        timeout=1200,
    )
    FIGURES["image build"] = f"{time.monotonic() - started:.0f} s"
    size = image_size_bytes(built)
    FIGURES["image size"] = (
        f"{size / 1e6:.0f} MB (base {image_size_bytes(BASE_IMAGE) / 1e6:.0f} MB)"
    )
    # The image stays for inspection (podman run ... localhost/gristmill:images-test); the tests
    # remove their containers.
    return built


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("image figures")
        for what, figure in FIGURES.items():
            terminalreporter.write_line(f"{what:<34} {figure}")
