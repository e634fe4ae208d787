# Development tasks for clinic. Needs only python3 (>= 3.11); everything else comes from
# requirements.lock into .venv.

PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
PYTEST_ARGS ?=

BIN := $(VENV)/bin
# Stamp of the last install: redone whenever requirements.lock changes.
INSTALLED := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
# The second, independent FHIR validator of the test suite (medplum on Node), pinned by its lockfile.
FHIR_VALIDATOR := tests/fhir_validator
FHIR_VALIDATOR_INSTALLED := $(FHIR_VALIDATOR)/node_modules/.installed

.DEFAULT_GOAL := help
.PHONY: help install venv lock run test fhir-validator browser fuzz lint typecheck bench clean

help:
	@echo "make install    create $(VENV) and install requirements.lock (hash-checked)"
	@echo "make run        migrate the database, then start web, worker and beat (PORT=$(PORT))"
	@echo "make test       run the test suite (PYTEST_ARGS=... to pass options)"
	@echo "make fhir-validator  install the test suite's FHIR validator (npm ci in $(FHIR_VALIDATOR))"
	@echo "make browser    the staff console's browser tests only (CLINIC_SCREENSHOTS=1 refreshes docs/screenshots)"
	@echo "make fuzz       stateful fuzzing of the API on PostgreSQL, as two identities (a few minutes)"
	@echo "make lint       ruff check"
	@echo "make typecheck  mypy"
	@echo "make bench      benchmarks against the seeded 100,000-client database (docs/performance.md)"
	@echo "make lock       regenerate requirements.lock from pyproject.toml"
	@echo "make clean      remove $(VENV), the FHIR validator's node_modules and caches (keeps instance/, which holds the database)"

install venv: $(INSTALLED)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "clinic needs Python >= 3.11; set PYTHON=python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --require-hashes --no-deps -r requirements.lock
	@touch $@

lock: | $(BIN)/python
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

run: $(INSTALLED)
	@mkdir -p instance
	$(FLASK) db upgrade
	@# Demo data once, as soon as the project has a `flask demo` command.
	@if [ ! -e instance/.demo-seeded ] && $(FLASK) demo --help >/dev/null 2>&1; then \
		$(FLASK) demo seed --clients 50 --seed 1 && touch instance/.demo-seeded; \
	fi
	@echo
	@$(FLASK) demo accounts 2>/dev/null | sed 's/^/  /' || true
	@echo
	@echo "  sign in:     http://127.0.0.1:$(PORT)/login  (the staff console)"
	@echo "  API docs:    http://127.0.0.1:$(PORT)/api/docs  (the API is under /api/v1)"
	@echo "  health:      http://127.0.0.1:$(PORT)/healthz  (readiness: /readyz, 503 until the worker's first heartbeat)"
	@if [ -n "$${REDIS_URL:-}" ]; then echo "  broker:      Redis (REDIS_URL)"; \
	else echo "  broker:      file system (instance/broker); set REDIS_URL to use Redis"; fi
	@echo "  first admin: $(FLASK) users create --email you@example.org --name \"Your Name\" --role admin --password-stdin"
	@echo
	@# honcho gives each process type its own PORT (web PORT, worker PORT+100, ...): the links the
	@# worker writes must point at the web process, so every process gets the same PUBLIC_BASE_URL.
	@# Ctrl-C stops every process and honcho exits with 130: the normal end of `make run`, not an error.
	PATH="$(CURDIR)/$(BIN):$$PATH" PUBLIC_BASE_URL="$${PUBLIC_BASE_URL:-http://127.0.0.1:$(PORT)}" \
		$(BIN)/honcho --no-colour -f Procfile.dev start --port $(PORT) || test $$? -eq 130

# The browser tests (tests/browser) drive Debian's chromium; without one they are skipped, and fail
# when CLINIC_REQUIRE_SERVICES=1 (CI, whose .ci/run installs the package when it is missing).
test: $(INSTALLED) fhir-validator
	@command -v chromium >/dev/null 2>&1 || [ -n "$${CLINIC_CHROMIUM:-}" ] || \
		echo "note: no chromium found, so the browser tests are skipped: sudo apt-get install chromium" >&2
	$(BIN)/pytest $(PYTEST_ARGS)

# The FHIR validator's npm packages (tests/fhir_validator), exactly as package-lock.json pins them,
# redone whenever the lockfile changes. Without npm its tests are skipped, and fail when
# CLINIC_REQUIRE_SERVICES=1 (CI).
fhir-validator:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(FHIR_VALIDATOR_INSTALLED); \
	elif [ "$${CLINIC_REQUIRE_SERVICES:-}" = 1 ]; then \
		echo "error: the FHIR validator needs Node.js and npm (node >= 20.19): sudo apt-get install nodejs npm" >&2; exit 1; \
	else \
		echo "note: no npm found, so the FHIR validator tests are skipped: sudo apt-get install nodejs npm" >&2; \
	fi

$(FHIR_VALIDATOR_INSTALLED): $(FHIR_VALIDATOR)/package-lock.json $(FHIR_VALIDATOR)/package.json
	npm ci --prefix $(FHIR_VALIDATOR) --no-audit --no-fund --ignore-scripts
	@touch $@

# Only the browser tests of the staff console; CLINIC_SCREENSHOTS=1 also rewrites docs/screenshots/.
browser: $(INSTALLED)
	$(BIN)/pytest tests/browser $(PYTEST_ARGS)

# Schemathesis follows the spec's links as a clinician of one site and an intake coordinator of
# another (tests/test_api_stateful.py); needs PostgreSQL (TEST_DATABASE_URL, or the local default).
# CLINIC_STATEFUL_SCENARIOS and CLINIC_STATEFUL_STEPS bound it (300 scenarios of 15 steps each).
fuzz: $(INSTALLED)
	CLINIC_STATEFUL_FUZZ=1 CLINIC_REQUIRE_SERVICES=1 $(BIN)/pytest -rP -k postgresql tests/test_api_stateful.py $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .

typecheck: $(INSTALLED)
	$(BIN)/mypy clinic config.py wsgi.py

# Not part of `make test`: needs the seeded clinic_bench database, Redis and wrk (docs/performance.md).
bench: $(INSTALLED)
	$(BIN)/python bench/api_load.py
	$(BIN)/python bench/reports.py
	$(BIN)/python bench/reminders.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/fhir_export.py
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis $(FHIR_VALIDATOR)/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
