"""Known vulnerabilities of every pinned dependency, from PyPI's vulnerability data.

`make audit` runs this in the project's .venv. It walks the dependency closure of
`gristmill[dev]` as installed (the pins of pyproject.toml and what they resolved to; not the
venv's own pip or setuptools) and asks PyPI's JSON API, the data pip-audit's default "pypi"
service reads (OSV records from the PyPA advisory database and GitHub advisories), for each:

1. `/pypi/<name>/<version>/json`: the vulnerabilities of exactly that version, as pip-audit
   does;
2. if that answer cannot be had (some networks, this project's CI among them, reach PyPI's
   project pages only) and the pinned version is the project's latest release,
   `/pypi/<name>/json`, whose vulnerabilities are those of the latest release, i.e. of ours.

A dependency neither answer covers is "unverified" and fails the audit, unless
`scripts/audit-unverified.txt` names that exact version with the reason it cannot be newer
(e.g. another dependency pins it exactly). Any vulnerability fails the audit, with its ids and
fixed versions.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "gristmill"
ROOT_EXTRAS = ("dev",)
DEFAULT_INDEX = "https://pypi.org/pypi"
ALLOW_FILE = Path(__file__).resolve().with_name("audit-unverified.txt")


@dataclass
class Finding:
    name: str
    version: str
    source: str = ""
    vulnerabilities: list[str] = field(default_factory=list)
    unverified: str = ""


def closure(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    """{canonical name: installed version} of everything `root[extras]` needs, root excluded."""
    found: dict[str, str] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        name, wanted = pending.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        dist = metadata.distribution(name)
        for text in dist.requires or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is not None and not any(
                requirement.marker.evaluate(env) for env in environments
            ):
                continue
            child = canonicalize_name(requirement.name)
            try:
                found[child] = metadata.version(child)
            except metadata.PackageNotFoundError:
                continue  # not needed on this platform or Python, so not installed
            pending.append((child, tuple(sorted(requirement.extras))))
    found.pop(canonicalize_name(root), None)
    return found


def _ids(vulnerabilities: list[dict[str, Any]]) -> list[str]:
    """ "PYSEC-1, CVE-2 (fixed in 1.2)" for each vulnerability not withdrawn."""
    described: list[str] = []
    for vulnerability in vulnerabilities:
        if vulnerability.get("withdrawn"):
            continue
        names = ", ".join([str(vulnerability["id"]), *vulnerability.get("aliases", [])])
        fixed = ", ".join(vulnerability.get("fixed_in") or []) or "no release"
        described.append(f"{names} (fixed in {fixed})")
    return described


def audit_one(client: httpx.Client, index: str, name: str, version: str) -> Finding:
    finding = Finding(name, version)
    exact = client.get(f"{index}/{name}/{version}/json")
    if exact.status_code == 200:
        finding.source = "exact version"
        finding.vulnerabilities = _ids(exact.json().get("vulnerabilities") or [])
        return finding
    project = client.get(f"{index}/{name}/json")
    if project.status_code != 200:
        finding.unverified = f"PyPI answered {exact.status_code} and {project.status_code}"
        return finding
    data = project.json()
    latest = data["info"]["version"]
    if latest != version:
        finding.unverified = (
            f"no per-version data reachable (HTTP {exact.status_code}) and {version} is not "
            f"the latest release ({latest})"
        )
        return finding
    finding.source = "latest release"
    finding.vulnerabilities = _ids(data.get("vulnerabilities") or [])
    return finding


def allowed_unverified(path: Path) -> dict[str, str]:
    """{"name==version": reason} from the allow file (`name==version  # reason` lines)."""
    allowed: dict[str, str] = {}
    if not path.exists():
        return allowed
    for line in path.read_text().splitlines():
        pin, _, reason = line.partition("#")
        if pin.strip():
            allowed[pin.strip()] = reason.strip()
    return allowed


def audit(index: str, allow_file: Path) -> Iterator[tuple[Finding, bool]]:
    """Each finding and whether it fails the audit."""
    allowed = allowed_unverified(allow_file)
    with httpx.Client(timeout=30, follow_redirects=True) as client:
        for name, version in sorted(closure(ROOT, ROOT_EXTRAS).items()):
            finding = audit_one(client, index, name, version)
            excused = finding.unverified and f"{name}=={version}" in allowed
            yield finding, bool(finding.vulnerabilities or (finding.unverified and not excused))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default=DEFAULT_INDEX, help="PyPI JSON API root")
    parser.add_argument("--allow-unverified", type=Path, default=ALLOW_FILE)
    args = parser.parse_args(argv)
    failed = audited = 0
    for finding, fails in audit(args.index.rstrip("/"), args.allow_unverified):
        audited += 1
        failed += fails
        label = f"{finding.name}=={finding.version}"
        if finding.vulnerabilities:
            print(f"VULNERABLE  {label}: {'; '.join(finding.vulnerabilities)}")
        elif finding.unverified and fails:
            print(f"UNVERIFIED  {label}: {finding.unverified}")
        elif finding.unverified:
            reason = allowed_unverified(args.allow_unverified)[label]
            print(f"unverified  {label}: {finding.unverified}; accepted: {reason}")
    print(f"audit: {audited} dependencies, {failed} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
