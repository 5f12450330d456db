#!/usr/bin/env bash
# Build the one Gristmill image (Dockerfile at the repository root) with docker or podman.
#
#   scripts/build_image.sh                     gristmill:<version of pyproject.toml>
#   IMAGE=registry.example.com/gristmill:1.2 scripts/build_image.sh
#   PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:... scripts/build_image.sh
#
# Engine: $CONTAINER_ENGINE if set, else docker when its daemon answers, else podman. (A docker
# CLI without an engine behind it is common on CI machines, hence `docker info`, not `which`.)
# The host's CA bundle is passed as the build secret `pip-ca`, so pip inside the build trusts
# what the host trusts (a TLS-inspecting proxy's CA, for one); set PIP_CA_BUNDLE= to pass none.
# Prints the image reference on its last line.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'build_image: %s\n' "$*" >&2; }

choose_engine() {
    if [[ -n "${CONTAINER_ENGINE:-}" ]]; then
        printf '%s\n' "${CONTAINER_ENGINE}"
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        printf 'docker\n'
    elif command -v podman >/dev/null 2>&1; then
        printf 'podman\n'
    else
        log "neither a docker engine nor podman is available (apt-get install podman)"
        return 1
    fi
}

ENGINE="$(choose_engine)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "${REPO_ROOT}/pyproject.toml" | head -1)"
IMAGE="${IMAGE:-gristmill:${VERSION}}"
PIP_CA_BUNDLE="${PIP_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"

args=(build --file "${REPO_ROOT}/Dockerfile" --tag "${IMAGE}")
if [[ -n "${PYTHON_IMAGE:-}" ]]; then
    args+=(--build-arg "PYTHON_IMAGE=${PYTHON_IMAGE}")
fi
if [[ -n "${PIP_CA_BUNDLE}" && -s "${PIP_CA_BUNDLE}" ]]; then
    args+=(--secret "id=pip-ca,src=${PIP_CA_BUNDLE}")
fi
if [[ "${ENGINE}" == podman ]]; then
    # Host networking avoids setting up a network namespace per RUN step, and explicit rlimits
    # are accepted where the defaults are refused (sandboxed CI machines); 1024 is far above
    # what pip needs. Replace them with PODMAN_BUILD_FLAGS.
    read -r -a extra <<<"${PODMAN_BUILD_FLAGS---network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024}"
    args+=("${extra[@]}")
fi

log "${ENGINE} ${args[*]} ${REPO_ROOT}"
started=${SECONDS}
"${ENGINE}" "${args[@]}" "${REPO_ROOT}" >&2
log "built ${IMAGE} in $((SECONDS - started)) s"
printf '%s\n' "${IMAGE}"
