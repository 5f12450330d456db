#!/usr/bin/env bash
# Make a local stand-in for python:3.11-slim-bookworm where no image registry is reachable.
#
#   scripts/build_local_base.sh [IMAGE]     default IMAGE: localhost/gristmill-python:3.11-bookworm
#
# mmdebstrap builds a minimal Debian bookworm root filesystem from the Debian archive (the one
# network source such machines have) with Debian's Python 3.11, venv and pip, and podman imports
# it as an image. Shaped like the official slim image: merged /usr without the usrmerge package
# (which would pull in perl), no documentation, man pages or translations, and apt keeps no
# package caches in image layers. The Dockerfile builds on it unchanged:
#   PYTHON_IMAGE=localhost/gristmill-python:3.11-bookworm scripts/build_image.sh
# Needs root, mmdebstrap and podman (apt-get install mmdebstrap podman). Prints IMAGE last.
set -euo pipefail

IMAGE="${1:-localhost/gristmill-python:3.11-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { printf 'build_local_base: %s\n' "$*" >&2; }

for tool in mmdebstrap podman; do
    command -v "${tool}" >/dev/null 2>&1 || { log "${tool} is not installed"; exit 1; }
done

workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT
started=${SECONDS}
mmdebstrap --quiet --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-venv,python-is-python3 \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='Dir::Cache::pkgcache ""' \
    --aptopt='Dir::Cache::srcpkgcache ""' \
    bookworm "${workdir}/rootfs.tar" "${MIRROR}" >&2
podman import --quiet \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "${workdir}/rootfs.tar" "${IMAGE}" >/dev/null
log "imported ${IMAGE} in $((SECONDS - started)) s"
printf '%s\n' "${IMAGE}"
