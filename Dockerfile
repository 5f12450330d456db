# syntax=docker/dockerfile:1.7
# The Gristmill image: one image for the api, the worker pools, the scheduler and the migration
# Job, as the Airflow and Superset images do. The three services share one distribution, one
# dependency set and one domain core, so three images would hold the same bytes three times;
# which process a container runs is its command (the chart and k8s/ pass the Procfile's commands
# as exec-form args). Build context: the repository root:
#   docker build -t gristmill:0.1.0 .                      (or `make images`, docker or podman)
#
# Stages:
#   base     the Python image plus the environment every stage shares
#   builder  dependencies, then the project, into the venv /opt/venv
#   runtime  base + tini + that venv: no compilers, no pip cache, no sources, no tests
# Runs as uid/gid 10001 with a read-only root filesystem: the only path written at run time is
# /tmp (HOME, TMPDIR, the worker's prometheus multiprocess directory, the heartbeat files and the
# beat schedule), which the chart mounts as an emptyDir.
#
# PID 1 is tini (Debian's package): it forwards SIGTERM to its one child and reaps zombies. The
# child is the command itself (the chart's exec-form args, or CMD's `sh -c 'exec ...'`, which
# becomes the server after the exec), so SIGTERM reaches uvicorn (stops accepting, finishes the
# requests in flight), the Celery worker (warm shutdown: stops consuming, finishes running tasks)
# or beat (saves its schedule) directly. tini runs without -g on purpose: signalling the whole
# process group would also hit Celery's pool children and turn the warm shutdown into a cold one.

# Any Debian-based Python 3.11+ image with pip and venv; pin a digest for reproducible builds:
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

FROM base AS builder
RUN python -m venv /opt/venv
WORKDIR /build
# Dependencies first, so that a source change does not reinstall them: pyproject.toml with empty
# packages is installed from a scratch directory, then the empty gristmill is removed. (Built in
# /build, its stale build/ copies of the empty packages would win over the real sources later.)
# The optional build secret `pip-ca` is a CA bundle for pip, for builds behind a TLS-inspecting
# proxy (`make images` passes the host's bundle); without it pip uses its own certifi bundle.
COPY pyproject.toml README.md ./
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && mkdir -p /tmp/deps/src/gristmill /tmp/deps/services \
    && cp pyproject.toml README.md /tmp/deps/ \
    && touch /tmp/deps/src/gristmill/__init__.py /tmp/deps/services/__init__.py \
    && pip install /tmp/deps \
    && pip uninstall --yes gristmill \
    && rm -rf /tmp/deps
COPY src ./src
COPY services ./services
# The build backend (setuptools) is fetched into an isolated environment, hence the secret again.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --no-deps . \
    && pip uninstall --yes pip setuptools \
    && python -m compileall -q /opt/venv/lib

FROM base AS runtime
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 gristmill \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin gristmill \
    && mkdir /app
COPY --from=builder /opt/venv /opt/venv
ENV HOME=/tmp \
    TMPDIR=/tmp \
    PORT=8000
# api, worker metrics, scheduler metrics (the chart's defaults).
EXPOSE 8000 9808 9809
# An empty, read-only working directory: nothing is imported from the current directory.
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
# Without args the container serves the api (the Procfile's api command, exactly); the workers,
# the scheduler and the migrations pass theirs, e.g.
#   celery -A services.worker.app worker --queues high --hostname high@%h --concurrency 2
CMD ["sh", "-c", "exec uvicorn services.api.app:create_app --factory --host 0.0.0.0 --port ${PORT:-8000} --no-access-log"]
