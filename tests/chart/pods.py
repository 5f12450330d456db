"""Turn rendered containers into local processes: env as the kubelet builds it, args expanded."""

from __future__ import annotations

import re
from typing import Any

from .helpers import by_kind

_REFERENCE = re.compile(r"\$\$|\$\((\w+)\)")


class UnresolvedReference(LookupError):
    """An env entry names a ConfigMap/Secret (or key) the rendered chart does not contain."""


def _sources(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    for cm in by_kind(docs, "ConfigMap"):
        found["ConfigMap", cm["metadata"]["name"]] = dict(cm.get("data", {}))
    for secret in by_kind(docs, "Secret"):
        found["Secret", secret["metadata"]["name"]] = dict(secret.get("stringData", {}))
    return found


def resolve_env(
    docs: list[dict[str, Any]],
    container: dict[str, Any],
    external: dict[tuple[str, str], dict[str, str]] | None = None,
) -> dict[str, str]:
    """The container's environment: envFrom first, then env (later entries win), with
    configMapKeyRef/secretKeyRef looked up in the rendered objects (or `external`, for Secrets
    the chart does not render). Optional refs that are missing are skipped, as the kubelet does."""
    sources = _sources(docs) | (external or {})
    env: dict[str, str] = {}
    for entry in container.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", entry["configMapRef"])
            if "configMapRef" in entry
            else ("Secret", entry["secretRef"])
        )
        data = sources.get((kind, ref["name"]))
        if data is None:
            if ref.get("optional"):
                continue
            raise UnresolvedReference(f"{kind}/{ref['name']}")
        env.update(data)
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(entry["value"], env)
            continue
        value_from = entry["valueFrom"]
        kind, ref = (
            ("ConfigMap", value_from["configMapKeyRef"])
            if "configMapKeyRef" in value_from
            else ("Secret", value_from["secretKeyRef"])
        )
        data = sources.get((kind, ref["name"]), {})
        if ref["key"] not in data:
            if ref.get("optional"):
                continue
            raise UnresolvedReference(f"{kind}/{ref['name']} key {ref['key']}")
        env[entry["name"]] = data[ref["key"]]
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`,
    references to undefined variables stay as they are."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def command_line(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """command + args after expansion (no command: the image's entrypoint, tini, is left out)."""
    return [expand(part, env) for part in [*container.get("command", []), *container["args"]]]
