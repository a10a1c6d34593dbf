# The front door (STYLE.md habit 4): CI calls only `make test`, developers `make up` and `make test`.
# Ports, topics and database URLs come from deploy/local.env, the one source of settings; the deploy/
# scripts read it themselves, this file only to print URLs and to point the tests at the infrastructure.
# Note: Make lets the values in deploy/local.env win over the environment here; the scripts and the
# services let the environment win. Override with `make -e` if you need both to agree on an override.

include deploy/local.env

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := .local/tools
UV := $(TOOLS)/bin/uv
PY := .venv/bin/python
# The machine's own Python 3.11, never a downloaded interpreter.
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

TEST_ENV := TEST_KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_BOOTSTRAP_SERVERS) TEST_PG_ADMIN_URL=$(PG_ADMIN_URL)
PYTEST := $(TEST_ENV) $(PY) -m pytest
# Test folders that exist (others add theirs); pytest exits 5 when a folder holds no tests yet.
TEST_DIRS := $(wildcard tests/unit tests/integration tests/e2e)

.PHONY: help install infra-up infra-down up down test lint fmt unit integration e2e bench token replay

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV) ## Install everything: uv, the venv (uv.lock), Kafka jars, PostgreSQL 15, DejaVu fonts and Chromium if missing
	$(UV) sync --frozen --all-packages
	deploy/kafka/fetch.sh
	deploy/postgres/install.sh
	deploy/fonts/install.sh
	deploy/chromium/install.sh

infra-up: install ## Start PostgreSQL and Kafka; create databases and topics (idempotent)
	deploy/infra-up.sh

# Each service database: the kernel's Alembic branch plus the service's own revisions (shared.migrate).
.PHONY: migrate
migrate: ## Apply every service's migrations to its database (needs `make infra-up`)
	@for service in units equipment compliance registry_sync; do \
		echo "== $$service"; $(PY) -m shared.migrate $$service upgrade; \
	done

# Demo data: the reference lists and the real list of 15,053 units, through the units bulk import
# (idempotent: a second run reports every row unchanged and appends nothing).
.PHONY: seed
seed: ## Load the units reference lists and the real list of units (needs `make migrate`)
	$(PY) -m units.seed

infra-down: ## Stop Kafka and PostgreSQL (data kept in .local/)
	deploy/infra-down.sh

up: install ## Start infra and every service in the foreground; Ctrl-C stops all of it
	@echo "units          http://127.0.0.1:$(UNITS_PORT)/docs"
	@echo "equipment      http://127.0.0.1:$(EQUIPMENT_PORT)/docs"
	@echo "compliance     http://127.0.0.1:$(COMPLIANCE_PORT)/docs"
	@echo "registry-sync  http://127.0.0.1:$(REGISTRY_SYNC_PORT)/docs"
	deploy/with-infra.sh sh -c '$(MAKE) --no-print-directory migrate && $(MAKE) --no-print-directory seed && exec .venv/bin/honcho start -f Procfile -e deploy/local.env'

down: infra-down ## Stop everything `make up` or `make infra-up` left running

test: install ## Install, start infra if needed, lint, run unit → integration → e2e; stop what it started
	deploy/with-infra.sh $(MAKE) --no-print-directory check

# What `make test` runs once the infrastructure is up: lint and the tests both run, and either failing
# fails the target, so one CI run reports both.
.PHONY: check
check:
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(PYTEST) $(TEST_DIRS) || status=1; \
	exit $$status

lint: ## ruff format --check, ruff check, mypy --strict, import-linter (all run; any failure fails)
	@status=0; \
	for step in "ruff format --check ." "ruff check ." "mypy" "lint-imports"; do \
		echo "== $$step"; .venv/bin/$$step || { status=1; echo "!! $$step failed"; }; \
	done; \
	exit $$status

fmt: ## Format and autofix
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

unit: ## Unit tests only (no infrastructure)
	$(PY) -m pytest tests/unit

integration: ## Integration tests (needs `make infra-up`)
	@[ -d tests/integration ] || { echo "no integration tests yet"; exit 0; }; \
	status=0; $(PYTEST) tests/integration || status=$$?; [ $$status -eq 5 ] && exit 0; exit $$status

e2e: ## End-to-end tests (needs `make infra-up`)
	@[ -d tests/e2e ] || { echo "no e2e tests yet"; exit 0; }; \
	status=0; $(PYTEST) tests/e2e || status=$$?; [ $$status -eq 5 ] && exit 0; exit $$status

bench: ## Run every tests/bench/bench_*.py (needs `make infra-up`)
	@shopt -s nullglob; benches=(tests/bench/bench_*.py); \
	[ $${#benches[@]} -gt 0 ] || { echo "no benchmarks yet"; exit 0; }; \
	for f in "$${benches[@]}"; do \
		m=$${f%.py}; m=$${m//\//.}; echo "== $$m"; $(TEST_ENV) $(PY) -m $$m; \
	done

token: ## Mint a development token: make token USER=<user id> [ROLE=ministry_admin|auditor|helpdesk]
	@# USER is also the login name in the environment: only a USER given on the command line counts.
	@[ "$(origin USER)" = "command line" ] || { echo "usage: make token USER=<user id> [ROLE=<global role>]"; exit 2; }
	$(UV) run --frozen python -m shared.devissuer mint --user $(USER) $(if $(ROLE),--role $(ROLE))

replay: ## Rebuild a projection from offset 0 and swap it in: make replay SERVICE=units PROJECTION=units.authz
	@[ -n "$(SERVICE)" ] && [ -n "$(PROJECTION)" ] || { \
		echo "usage: make replay SERVICE=<units|equipment|compliance|registry-sync> PROJECTION=<name>"; exit 2; }
	.venv/bin/$(SERVICE)-worker rebuild $(PROJECTION)
