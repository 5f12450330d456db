# Gristmill developer commands. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3
export PORT ?= 8000
DEV_ENV := .env

.PHONY: flower-auth install run test test-fast chaos fuzz lint audit format migrate createdb helm k8s bench clean images images-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## a .venv with the app and the dev tools

# A dev token is generated once into .env (git-ignored) and printed by `make run`.
$(DEV_ENV):
	@echo "API_TOKENS=dev-$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(24))')" > $@
	@echo "LOG_JSON=false" >> $@

# Flower's login, added to an .env made before Flower was part of `make run`.
flower-auth: $(DEV_ENV)
	@grep -q '^FLOWER_BASIC_AUTH=' $(DEV_ENV) || echo "FLOWER_BASIC_AUTH=admin:$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(12))')" >> $(DEV_ENV)

createdb: install $(DEV_ENV)
	$(BIN)/gristmill create-db

migrate: install $(DEV_ENV) ## apply database migrations (alembic upgrade head)
	$(BIN)/gristmill migrate

run: install $(DEV_ENV) flower-auth createdb migrate ## the whole stack: api, workers, scheduler, flower
	@set -a; source $(DEV_ENV); set +a; \
	echo "Gristmill api: http://127.0.0.1:$(PORT)  (docs: http://127.0.0.1:$(PORT)/docs)"; \
	echo "Dashboard:     http://127.0.0.1:$(PORT)/  (sign in with the dev token)"; \
	echo "Flower:        http://127.0.0.1:$${FLOWER_PORT:-5555}  (login $${FLOWER_BASIC_AUTH})"; \
	echo "Dev token:     $${API_TOKENS%%,*}"; \
	echo "CLI:           GRISTMILL_URL=http://127.0.0.1:$(PORT) GRISTMILL_TOKEN=<dev token> gristmill queues"; \
	echo "Try:           curl -H \"Authorization: Bearer $${API_TOKENS%%,*}\" http://127.0.0.1:$(PORT)/api/jobs"; \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --port $(PORT) -f Procfile

# Two pytest workers (each with its own database, Redis db and processes), a test file per
# worker at a time: most tests wait on real processes, so two share the two cores well.
TEST_WORKERS ?= 2
test: install ## the whole suite against real PostgreSQL, Redis and worker processes
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: install ## everything but the tests that run the real processes
	$(BIN)/pytest -m "not integration"

FUZZ_EXAMPLES ?= 100
fuzz: install ## schemathesis over the whole api: FUZZ_EXAMPLES cases per operation and phase, a fresh seed each run
	GRISTMILL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) GRISTMILL_FUZZ_DETERMINISTIC=0 $(BIN)/pytest tests/api/test_fuzz.py -s --timeout 1800

lint: install ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# PyPI's vulnerability data for every pinned dependency (pip-audit's default source); see the
# script's docstring for networks that reach only PyPI's project pages.
audit: install ## known vulnerabilities of the pinned dependencies
	$(BIN)/python scripts/audit_dependencies.py

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

helm: ## fetch a pinned helm into .bin/ unless one is on PATH
	bash scripts/ensure_helm.sh

k8s: install ## render k8s/ from the chart
	bash scripts/render_k8s.sh

bench: install ## figures against plain FastAPI / plain Celery peers in the same run (needs wrk)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install -y wrk"; exit 1; }
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

images: ## build the Gristmill image (Dockerfile) with docker, or podman when no docker engine answers
	bash scripts/build_image.sh

# Needs podman, mmdebstrap and runc (apt); without them the tests are skipped with the reason.
images-test: install ## build the image on a local Debian base, run api, worker and scheduler as containers
	GRISTMILL_IMAGES_TEST=1 $(BIN)/pytest tests/images

clean:
	rm -rf $(VENV) .bin .mypy_cache .ruff_cache

CHAOS_SCALE ?= full
chaos: install ## the chaos suite of issue 8 at full scale (a short version runs in make test); prints its table
	CHAOS_SCALE=$(CHAOS_SCALE) $(BIN)/pytest tests/chaos -m chaos -s --timeout 1800
